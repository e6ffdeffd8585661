"""/api/playbooks: the checklist templates currently loaded."""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.auth import Hub, Viewer
from hub.api.params import PlaybookId
from hub.api.schemas import PlaybookSummary, playbook_summary
from hub.core.checklists.schema import Playbook
from hub.errors import NotFound

router = APIRouter(prefix="/api/playbooks", tags=["playbooks"])


@router.get("", response_model=list[PlaybookSummary])
def list_playbooks(ctx: Hub, _who: Viewer) -> list[PlaybookSummary]:
    """Every playbook in the library, by id."""
    library = ctx.playbooks()
    return [playbook_summary(p) for p in sorted(library, key=lambda p: p.id)]


@router.get("/{playbook_id}", response_model=Playbook,
            responses={404: {"description": "No such playbook"}})
def get_playbook(playbook_id: PlaybookId, ctx: Hub, _who: Viewer) -> Playbook:
    """The full definition of one playbook (its current version)."""
    library = ctx.playbooks()
    if playbook_id not in library:
        raise NotFound(f"playbook '{playbook_id}' does not exist")
    return library.get(playbook_id)
