"""The runtime every stage process runs on: frames and their wiring, delivery, sockets,
the stage loop, typed records (progress, persisted state, control), configuration and
logging. It imports nothing from the stages, the command or the tests."""
