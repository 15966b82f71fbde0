"""The `voxkey` command: one module per subcommand, above the runtime (bus/) and the stages."""
