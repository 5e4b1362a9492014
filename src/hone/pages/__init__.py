"""Every HTML view hone writes, each a self-contained page (no scripts from the network): the run
report (:mod:`.report`), the audit page (:mod:`.audit`), the explanation views (:mod:`.attributions`)
and the helpers they share (:mod:`.html`). Pages read the run's JSON files; they compute nothing."""
