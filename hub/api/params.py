"""Path and query parameter types shared by the API and the dashboard (bounded, NUL-free)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from hub.api.schemas import no_nul

# Run ids are 32-bit integers in the database: a larger number is a 422, not a driver error.
RunId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Run id.")]
StepId = Annotated[str, Path(min_length=1, max_length=100, description="Step id.")]
PlaybookId = Annotated[str, Path(min_length=1, max_length=100, description="Playbook id.")]

ClientFilter = Annotated[str | None, Query(max_length=200, description="Client id."),
                         AfterValidator(lambda v: v if v is None else no_nul(v))]
PlaybookFilter = Annotated[str | None, Query(max_length=100, description="Playbook id."),
                           AfterValidator(lambda v: v if v is None else no_nul(v))]
AssigneeFilter = Annotated[str | None,
                           Query(max_length=100,
                                 description="Runs with an unfinished step assigned to this "
                                 "team member."),
                           AfterValidator(lambda v: v if v is None else no_nul(v))]
