from gauntlet.cli import main

raise SystemExit(main())
