from voxkey.cli import main

main()
