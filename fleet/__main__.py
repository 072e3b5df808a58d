from fleet.cli import main

raise SystemExit(main())
