"""The device inventory of each RMM connector against its sandbox: the normalised facts a
verification check reads, from one listing per site (plus one report per fact asked for)."""

from __future__ import annotations

from connectors.base import build_connector
from connectors.datto_rmm.sandbox import SandboxServer as DattoSandbox
from connectors.inventory import DeviceFact, DeviceFacts, DeviceInventory
from connectors.ncentral.sandbox import SandboxServer as NcentralSandbox
from connectors.ninjaone.sandbox import SandboxServer as NinjaSandbox


def by_name(found: list[DeviceFacts]) -> dict[str | None, DeviceFacts]:
    return {f.hostname: f for f in found}


def test_datto_devices_carry_online_patch_and_antivirus_facts() -> None:
    """Datto: online, last seen, approved-pending patches, antivirus status; no backups."""
    with DattoSandbox() as server:
        store = server.sandbox.store
        site = store.create_site("Acme HQ")
        store.create_device(site["uid"], "ACME-FS01")
        store.create_device(site["uid"], "ACME-PC02", online=False,
                            antivirus={"antivirusStatus": "RunningAndNotUpToDate"},
                            patchManagement={"patchStatus": "ApprovedPending",
                                             "patchesApprovedPending": 3})
        store.create_device(site["uid"], "ACME-OLD", deleted=True)
        connector = build_connector("datto-rmm", "datto", server.connector_config())
        assert isinstance(connector, DeviceInventory)
        found = by_name(connector.device_facts([site["uid"]]))
        assert set(found) == {"ACME-FS01", "ACME-PC02"}  # the deleted device is left out
        fs, pc = found["ACME-FS01"], found["ACME-PC02"]
        assert (fs.online, fs.patches_pending_critical, fs.av_active, fs.av_up_to_date) == \
            (True, 0, True, True)
        assert (pc.online, pc.patches_pending_critical, pc.av_active, pc.av_up_to_date) == \
            (False, 3, True, False)
        assert fs.site == site["uid"] and fs.last_seen is not None
        assert fs.last_backup_ok_at is None
        assert server.sandbox.request_count("GET", f"/api/v2/site/{site['uid']}/devices") == 1
        connector.close()


def test_ninjaone_reads_only_the_reports_asked_for() -> None:
    """NinjaOne: devices of the organization, then one report per wanted fact."""
    with NinjaSandbox() as server:
        store = server.sandbox.store
        org = store.create_organization("Acme")
        other = store.create_organization("Globex")
        fs = store.create_device(org["id"], "ACME-FS01")
        pc = store.create_device(org["id"], "ACME-PC02", offline=True)
        store.create_device(other["id"], "GLOBEX-PC01")
        store.set_antivirus(fs["id"])
        store.set_antivirus(pc["id"], state="OFF", definitions="OUT_OF_DATE")
        store.backup_job(fs["id"])
        with store.lock:
            store.pending_patches.append({"id": "p1", "deviceId": pc["id"], "name": "KB1",
                                          "severity": "CRITICAL", "status": "PENDING",
                                          "type": "SECURITY_UPDATES", "timestamp": 1.0e9})
        connector = build_connector("ninjaone", "ninja", server.connector_config())
        assert isinstance(connector, DeviceInventory)
        online = by_name(connector.device_facts([str(org["id"])],
                                                want=frozenset({DeviceFact.ONLINE})))
        assert set(online) == {"ACME-FS01", "ACME-PC02"}
        assert online["ACME-PC02"].online is False and online["ACME-FS01"].online is True
        assert online["ACME-FS01"].av_active is None  # not asked: not read
        assert server.sandbox.request_count("GET", "/v2/queries/antivirus-status") == 0
        found = by_name(connector.device_facts([str(org["id"])]))
        assert (found["ACME-FS01"].av_active, found["ACME-FS01"].av_up_to_date) == (True, True)
        assert (found["ACME-PC02"].av_active, found["ACME-PC02"].av_up_to_date) == \
            (False, False)
        assert found["ACME-PC02"].patches_pending_critical == 1
        assert found["ACME-FS01"].patches_pending_critical == 0
        assert found["ACME-FS01"].last_backup_ok_at is not None
        assert found["ACME-PC02"].last_backup_ok_at is None
        connector.close()


def test_ncentral_knows_only_the_last_check_in() -> None:
    """N-central: one listing per customer; last check-in is the only fact."""
    with NcentralSandbox() as server:
        store = server.sandbox.store
        customer = store.create_customer("Acme")
        cid = customer["customerId"]
        store.create_device(cid, "ACME-FS01")
        connector = build_connector("ncentral", "nc", server.connector_config())
        assert isinstance(connector, DeviceInventory)
        [device] = connector.device_facts([str(cid)])
        assert (device.hostname, device.site) == ("ACME-FS01", str(cid))
        assert device.last_seen is not None and device.online is None
        assert device.av_active is None and device.patches_pending_critical is None
        connector.close()
