"""The vendor-neutral sandbox kit: fault switches, the HTTP fault gate and control routes,
webhook dispatch and a loopback host. A vendor's sandbox adds only its routes and shapes.

```python
faults = FaultSwitches()
dispatcher = WebhookDispatcher(faults=faults)
app = FaultGate(Starlette(routes=vendor_routes + control_routes(faults)), faults,
                error=vendor_error_shape)
host = SandboxHost(app, dispatcher)     # host.start(); host.url; host.stop()
dispatcher.send(url, body, headers)     # drop / duplicate switches applied
```
"""

from connectors.sandbox.app import (
    CONTROL_PREFIX,
    FaultGate,
    HostedSandbox,
    SandboxHost,
    control_routes,
    plain_error,
)
from connectors.sandbox.dispatch import WebhookDispatcher
from connectors.sandbox.faults import WRITE_METHODS, Failure, FaultSwitches, GateAction

__all__ = [
    "CONTROL_PREFIX",
    "WRITE_METHODS",
    "Failure",
    "FaultGate",
    "FaultSwitches",
    "GateAction",
    "HostedSandbox",
    "SandboxHost",
    "WebhookDispatcher",
    "control_routes",
    "plain_error",
]
