"""voxkey tray: an icon for the desktop's tray that shows what voxkey does, with a menu.

    voxkey tray [--config FILE] [--set section.key=value ...]

A StatusNotifierItem on the session bus (voxkey/tray/sni.py), shown by the panel's
tray: wf-panel-pi on the Pi, swaybar, Waybar's `tray` module, KDE, GNOME with the
AppIndicator extension. Its icon and tooltip say listening, hearing, thinking, typing,
paused, loading or error (voxkey/indicator.py follows the bus; the icons are drawn in
voxkey/tray/icons.py, no icon theme needed). A click on it pauses or resumes
listening; its menu (voxkey/tray/menu.py) pauses or resumes, sets the mode, cancels
the answers in progress, starts a new conversation, or quits the tray. While no voxkey
runs it says so (stopped: start it with `voxkey up`) and waits for one. With
`--set cli.sound_cues=true` it plays a short tone when listening starts and stops.
Runs until quit from its menu, SIGINT or SIGTERM (exit status 0).
"""


def add_cli(commands):
    tray = commands.add_parser("tray", help="an icon in the desktop's tray: what voxkey does, and a menu")
    tray.set_defaults(run=run)
    return tray


def run(args) -> int:
    import asyncio

    from voxkey import settings
    from voxkey.tray.app import serve  # only here: dbus-fast is for the tray alone

    return asyncio.run(serve(settings.load(args.config, args.set)))
