"""The `voxkey` command: one module per subcommand, above the runtime (bus/) and the stages.

`INVOKED_NS` is when the command was given: taken as the package is first imported, before
any subcommand's imports take their time (`voxkey listen on` keeps what was said from then).
"""

import time

INVOKED_NS = time.monotonic_ns()
