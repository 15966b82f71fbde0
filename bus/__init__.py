"""Shared mechanics of voxkey: frames, sockets, config, logging, the stage runtime."""
