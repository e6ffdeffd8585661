"""Linking vendor records to hub clients (pure): name normalisation and similarity
(``names``), link proposals with confidence (``proposals``), drift of stored links
(``drift``). Nothing here links: an admin accepts a proposal."""
