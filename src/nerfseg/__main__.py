from nerfseg.cli import main

raise SystemExit(main())
