from surveytune.cli.main import main

main()
