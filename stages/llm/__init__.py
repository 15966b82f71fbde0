"""What the two language-model stages (instruct, thinking) share; not a process of its own."""
