from symbench.cli import main

raise SystemExit(main())
