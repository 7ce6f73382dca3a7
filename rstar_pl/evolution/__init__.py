"""The bookkeeping of `rstar-pl evolve`: which stages finished with which settings
(`ledger`), and the reports a run writes (`report`)."""
