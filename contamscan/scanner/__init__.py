"""Scanning: match a batch (:mod:`.match`), scan a shard (:mod:`.shard`), run many on local
processes or Ray behind one protocol (:mod:`.executors`), resume (:mod:`.checkpoint`), and
the whole scan (:mod:`.run`)."""
