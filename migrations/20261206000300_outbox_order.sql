-- When each setting a write kept in the outbox could overwrite was last changed live, so a
-- replayed change never replaces a newer one (docs/operations.md, "Outages and the outbox").
-- Set by the bot's live writes (/progress, /energy and the energy buttons, /block, /unblock
-- and the block button) to the moment the user sent them; replays only read them. Null: not
-- changed live since this migration. The range keeps every stored value one that Python can
-- load (no infinities, no years past 9999), whoever writes it.
ALTER TABLE theaters ADD COLUMN progress_set_at timestamptz
  CONSTRAINT theaters_progress_set_at_range
  CHECK (progress_set_at BETWEEN '1970-01-01 00:00+00' AND '3000-01-01 00:00+00');
ALTER TABLE theaters ADD COLUMN blocked_set_at timestamptz
  CONSTRAINT theaters_blocked_set_at_range
  CHECK (blocked_set_at BETWEEN '1970-01-01 00:00+00' AND '3000-01-01 00:00+00');
ALTER TABLE global_metrics ADD COLUMN energy_set_at timestamptz
  CONSTRAINT global_metrics_energy_set_at_range
  CHECK (energy_set_at BETWEEN '1970-01-01 00:00+00' AND '3000-01-01 00:00+00');

-- The bot's own unit of work (the `authenticated` role under RLS) reads and sets them.
GRANT SELECT (progress_set_at, blocked_set_at), UPDATE (progress_set_at, blocked_set_at)
  ON theaters TO authenticated;
GRANT SELECT (energy_set_at), UPDATE (energy_set_at) ON global_metrics TO authenticated;
