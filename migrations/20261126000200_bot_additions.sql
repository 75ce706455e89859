-- What the Telegram bot adds to the Aelpher schema (SPEC §2). Additive only.
-- Every new per-user table has RLS with a policy like the seed's, and every table the bot
-- reaches as `authenticated` is granted explicitly: hosted Supabase no longer grants new
-- public tables to the API roles by itself.

-- The seed's tables, granted to the role every per-user unit of work runs as.
GRANT SELECT, INSERT, UPDATE, DELETE ON
  theaters, nba_items, execution_logs, reflections, global_metrics, sync_queue
  TO authenticated;

-- Theater additions: snoozing (idle nudges) and why it is blocked.
ALTER TABLE theaters ADD COLUMN snoozed_until timestamptz;
ALTER TABLE theaters ADD COLUMN blocked_reason text
  CHECK (blocked_reason IS NULL OR char_length(blocked_reason) <= 200);

-- NBA item additions: completion, and the invariants of the ranking rules.
ALTER TABLE nba_items ADD COLUMN completed_at timestamptz;
ALTER TABLE nba_items ADD CONSTRAINT nba_items_title_length
  CHECK (char_length(btrim(title)) BETWEEN 1 AND 200) NOT VALID;
ALTER TABLE nba_items ADD CONSTRAINT nba_items_description_length
  CHECK (description IS NULL OR char_length(description) <= 1000) NOT VALID;
-- At most one open current item, one open locked item and one open manual pick per theater.
CREATE UNIQUE INDEX nba_items_one_current ON nba_items (user_id, arm_type)
  WHERE is_current AND completed_at IS NULL;
CREATE UNIQUE INDEX nba_items_one_locked ON nba_items (user_id, arm_type)
  WHERE is_locked AND completed_at IS NULL;
CREATE UNIQUE INDEX nba_items_one_manual ON nba_items (user_id, arm_type)
  WHERE is_manually_selected AND completed_at IS NULL;

-- Execution logs: a key per Telegram update or button press, so a double tap or a
-- redelivered update records one log (unique per user when present).
ALTER TABLE execution_logs ADD COLUMN dedupe_key text;
CREATE UNIQUE INDEX execution_logs_dedupe ON execution_logs (user_id, dedupe_key)
  WHERE dedupe_key IS NOT NULL;
CREATE INDEX execution_logs_user_time ON execution_logs (user_id, "timestamp" DESC);
CREATE INDEX reflections_user_time ON reflections (user_id, "timestamp" DESC);

-- One Telegram user <-> one Aelpher user.
CREATE TABLE telegram_links (
  telegram_user_id bigint PRIMARY KEY,
  user_id uuid UNIQUE NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  chat_id bigint NOT NULL,
  active boolean NOT NULL DEFAULT true,
  linked_at timestamptz DEFAULT now()
);
ALTER TABLE telegram_links ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users own their telegram link" ON telegram_links
  FOR ALL TO authenticated
  USING ((SELECT auth.uid()) = user_id) WITH CHECK ((SELECT auth.uid()) = user_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON telegram_links TO authenticated;

-- What the nudges depend on, per user.
CREATE TABLE user_settings (
  user_id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  timezone text NOT NULL DEFAULT 'UTC' CHECK (char_length(timezone) BETWEEN 1 AND 64),
  quiet_start time DEFAULT '22:00',
  quiet_end time DEFAULT '08:00',
  brief_time time,
  review_day smallint CHECK (review_day BETWEEN 0 AND 6),
  review_time time,
  idle_after_hours int NOT NULL DEFAULT 72 CHECK (idle_after_hours BETWEEN 1 AND 720),
  overload_threshold int NOT NULL DEFAULT 80 CHECK (overload_threshold BETWEEN 1 AND 100),
  weekly_capacity_hours int NOT NULL DEFAULT 40 CHECK (weekly_capacity_hours BETWEEN 1 AND 168),
  overload_snoozed_until timestamptz,
  CONSTRAINT user_settings_quiet_pair CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);
ALTER TABLE user_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users own their settings" ON user_settings
  FOR ALL TO authenticated
  USING ((SELECT auth.uid()) = user_id) WITH CHECK ((SELECT auth.uid()) = user_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON user_settings TO authenticated;

-- The nudge ledger: each nudge is claimed under a unique key before it is sent.
CREATE TABLE nudges (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('idle', 'overload', 'brief', 'review')),
  arm_type text CHECK (arm_type IN ('ibm', 'cs')),
  dedupe_key text NOT NULL,
  status text NOT NULL DEFAULT 'claimed' CHECK (status IN ('claimed', 'sent', 'failed')),
  attempts int NOT NULL DEFAULT 0,
  claimed_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz,
  risk numeric(5,2),
  UNIQUE (user_id, dedupe_key)
);
ALTER TABLE nudges ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users own their nudges" ON nudges
  FOR ALL TO authenticated
  USING ((SELECT auth.uid()) = user_id) WITH CHECK ((SELECT auth.uid()) = user_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON nudges TO authenticated;
CREATE INDEX nudges_user_kind_time ON nudges (user_id, kind, claimed_at DESC);
CREATE INDEX nudges_unsent ON nudges (claimed_at) WHERE status = 'claimed';

-- Conversation state of the Telegram application (PTB persistence). Written only by the
-- bot's own privileged connection; no API role may read it.
CREATE TABLE bot_persistence (
  kind text NOT NULL,
  key text NOT NULL,
  data jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, key)
);
ALTER TABLE bot_persistence ENABLE ROW LEVEL SECURITY;
