"""The failure a person can act on: its message is one line naming the problem and the
fix. The command reports any of them as `voxkey: ...` with exit status 1
(voxkey/cli.py), without importing every module that may raise one."""


class Explained(Exception):
    pass
