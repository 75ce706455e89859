-- What a user can reach through Supabase's Data API with their own JWT (docs/operations.md,
-- "Security model"). Grants decide which tables and columns a role reaches at all, row-level
-- security then which rows. Additive: revokes, narrower policies, one new privileged table.
--
--   * anon reaches nothing of ours. On projects whose default privileges granted every new
--     public table to the API roles, the grants below are what is left.
--   * authenticated keeps what the Aelpher app needs on its own rows of the seed tables and of
--     user_settings, but never TRUNCATE (it ignores row-level security), REFERENCES or TRIGGER.
--   * telegram_links and the nudges ledger are the bot's: a user may read their own rows and
--     nothing more. The bot writes them as its connecting role (privileged), also inside a
--     user's unit of work.
--   * bot_persistence, schema_migrations and link_attempts are the bot's alone.
--   * No function of ours may be called by the API roles (PostgreSQL grants EXECUTE to PUBLIC
--     by default; triggers still fire without it).

REVOKE ALL ON theaters, nba_items, execution_logs, reflections, global_metrics, sync_queue,
  user_settings, telegram_links, nudges, bot_persistence
  FROM PUBLIC, anon;
REVOKE TRUNCATE, REFERENCES, TRIGGER ON theaters, nba_items, execution_logs, reflections,
  global_metrics, sync_queue, user_settings
  FROM authenticated;

-- Telegram links: who may act in an account, and which chat its nudges go to. Read only.
REVOKE ALL ON telegram_links FROM authenticated;
GRANT SELECT ON telegram_links TO authenticated;
DROP POLICY "Users own their telegram link" ON telegram_links;
CREATE POLICY "Users read their telegram link" ON telegram_links
  FOR SELECT TO authenticated
  USING ((SELECT auth.uid()) = user_id);

-- The nudge ledger: what the scan claimed, sent, retries or gave up. Read only.
REVOKE ALL ON nudges FROM authenticated;
GRANT SELECT ON nudges TO authenticated;
DROP POLICY "Users own their nudges" ON nudges;
CREATE POLICY "Users read their nudges" ON nudges
  FOR SELECT TO authenticated
  USING ((SELECT auth.uid()) = user_id);

-- The bot's own state.
REVOKE ALL ON bot_persistence FROM authenticated;
DO $migrations$
BEGIN
  IF to_regclass('public.schema_migrations') IS NOT NULL THEN  -- absent with the Supabase CLI
    REVOKE ALL ON public.schema_migrations FROM PUBLIC, anon, authenticated;
  END IF;
END
$migrations$;

REVOKE EXECUTE ON FUNCTION update_updated_at(), nudge_theater_hint(), nudge_overload_hint(),
  nudge_settings_hint()
  FROM PUBLIC, anon, authenticated;

-- /link's counters (services/repos/link_attempts.py): code requests and wrong codes per
-- Telegram user ('tg:<id>') and per email ('email:<sha-256 of the address>'), shared by every
-- instance and kept across restarts. Each row expires when it leaves its window; writers
-- delete expired rows. No API role reaches it.
CREATE TABLE link_attempts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('code_request', 'wrong_code')),
  subject text NOT NULL CHECK (char_length(subject) <= 100),
  at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX link_attempts_subject ON link_attempts (kind, subject, expires_at);
CREATE INDEX link_attempts_expiry ON link_attempts (expires_at);
ALTER TABLE link_attempts ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON link_attempts FROM PUBLIC, anon, authenticated;
REVOKE ALL ON SEQUENCE link_attempts_id_seq FROM PUBLIC, anon, authenticated;
