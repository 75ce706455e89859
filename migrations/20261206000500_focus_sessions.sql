-- Focus sessions (services/focus.py; services/repos/focus_sessions.py): a person works on the
-- current item of a theater and the bot keeps the time. Additive.
--
-- A session is running (stopped_at and paused_at NULL), paused (paused_at set) or stopped
-- (stopped_at set; log_id is the execution log its stop recorded). Working time is
-- (paused_at, or now, or stopped_at) − started_at − paused_seconds.
--
-- At most one session per user is not stopped: the partial unique index below, so two
-- instances (or two taps) starting at once cannot both succeed.
--
-- A user may read and write their own rows through the Data API (a future app can start and
-- stop timers), like the other user tables. What they can write is bounded here (instants in
-- the sane range, counts in range) and the bot clamps what it reads anyway (a started_at in
-- the future, a paused_at before started_at, more paused seconds than elapsed ones, a session
-- running for days): services/focus.py working_seconds. item_id may name any item id (a
-- foreign key check ignores row-level security); the bot reads the item under RLS, so an id
-- that is not the user's reads as a gone item.

CREATE TABLE focus_sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  arm_type text NOT NULL CHECK (arm_type IN ('ibm', 'cs')),
  item_id uuid REFERENCES nba_items(id) ON DELETE SET NULL,
  started_at timestamptz NOT NULL
    CONSTRAINT focus_sessions_started_at_sane
      CHECK (started_at >= 'epoch' AND started_at < '2200-01-01 00:00+00'),
  paused_at timestamptz
    CONSTRAINT focus_sessions_paused_at_sane
      CHECK (paused_at >= 'epoch' AND paused_at < '2200-01-01 00:00+00'),
  paused_seconds integer NOT NULL DEFAULT 0
    CHECK (paused_seconds >= 0 AND paused_seconds <= 10 * 365 * 86400),
  planned_minutes integer CHECK (planned_minutes BETWEEN 1 AND 1440),
  stopped_at timestamptz
    CONSTRAINT focus_sessions_stopped_at_sane
      CHECK (stopped_at >= 'epoch' AND stopped_at < '2200-01-01 00:00+00'),
  log_id uuid REFERENCES execution_logs(id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX focus_sessions_one_running ON focus_sessions (user_id)
  WHERE stopped_at IS NULL;
CREATE INDEX focus_sessions_user_started ON focus_sessions (user_id, started_at);

ALTER TABLE focus_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users own their focus sessions" ON focus_sessions
  FOR ALL TO authenticated
  USING ((SELECT auth.uid()) = user_id)
  WITH CHECK ((SELECT auth.uid()) = user_id);
REVOKE ALL ON focus_sessions FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON focus_sessions TO authenticated;
