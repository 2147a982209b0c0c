from reconcile.entry import main

raise SystemExit(main())
