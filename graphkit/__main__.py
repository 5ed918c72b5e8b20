from graphkit._entry import main

main()
