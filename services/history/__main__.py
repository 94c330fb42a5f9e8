from services.history.server import main

main()
