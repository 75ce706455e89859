-- Values the bot can work with, in every column a user can write through the Supabase Data
-- API with their own JWT. Additive only.
--
-- PostgreSQL stores values Python cannot load or compute with: 'infinity', '-infinity', years
-- before 1 or after 9999 in timestamptz, 'NaN' in numeric, '24:00' in time. One such value in
-- one user's row used to make every statement that read the row fail, the nudge scan for
-- all users included. These constraints refuse them from now on:
--
--   instants   1970-01-01 00:00 UTC ('epoch', which the scan's hints use) up to, not
--              including, 2200-01-01 00:00 UTC
--   numerics   not 'NaN' (the seed's NUMERIC(p,s) columns cannot hold an infinity)
--   times      before '24:00'
--
-- They are NOT VALID: existing rows are not checked, so this migration never fails on old
-- data, but every insert and every update is, including an update of another column of a
-- row that breaks one of them. The bot therefore still reads defensively (services/sanity.py,
-- services/pgtypes.py) and the scan never writes to such a row (services/repos/scan.py).
-- `ALTER TABLE ... VALIDATE CONSTRAINT ...` works once the old rows are fixed.
-- The list of columns is services/sanity.py: SANE_COLUMNS; a test keeps both the same.

ALTER TABLE theaters
  ADD CONSTRAINT theaters_last_activity_sane
    CHECK (last_activity >= 'epoch' AND last_activity < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT theaters_snoozed_until_sane
    CHECK (snoozed_until >= 'epoch' AND snoozed_until < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT theaters_created_at_sane
    CHECK (created_at >= 'epoch' AND created_at < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT theaters_updated_at_sane
    CHECK (updated_at >= 'epoch' AND updated_at < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT theaters_idle_check_at_sane
    CHECK (idle_check_at >= 'epoch' AND idle_check_at < '2200-01-01 00:00+00') NOT VALID;

ALTER TABLE nba_items
  ADD CONSTRAINT nba_items_created_at_sane
    CHECK (created_at >= 'epoch' AND created_at < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT nba_items_last_updated_sane
    CHECK (last_updated >= 'epoch' AND last_updated < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT nba_items_completed_at_sane
    CHECK (completed_at >= 'epoch' AND completed_at < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT nba_items_stale_days_sane
    CHECK (stale_days <> 'NaN') NOT VALID;

ALTER TABLE execution_logs
  ADD CONSTRAINT execution_logs_timestamp_sane
    CHECK ("timestamp" >= 'epoch' AND "timestamp" < '2200-01-01 00:00+00') NOT VALID;

ALTER TABLE reflections
  ADD CONSTRAINT reflections_timestamp_sane
    CHECK ("timestamp" >= 'epoch' AND "timestamp" < '2200-01-01 00:00+00') NOT VALID;

ALTER TABLE global_metrics
  ADD CONSTRAINT global_metrics_last_sync_time_sane
    CHECK (last_sync_time >= 'epoch' AND last_sync_time < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT global_metrics_last_computed_sane
    CHECK (last_computed >= 'epoch' AND last_computed < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT global_metrics_overload_check_at_sane
    CHECK (overload_check_at >= 'epoch' AND overload_check_at < '2200-01-01 00:00+00')
    NOT VALID,
  ADD CONSTRAINT global_metrics_combined_progress_sane
    CHECK (combined_progress <> 'NaN') NOT VALID,
  ADD CONSTRAINT global_metrics_overload_risk_sane
    CHECK (overload_risk <> 'NaN') NOT VALID;

ALTER TABLE user_settings
  ADD CONSTRAINT user_settings_overload_snoozed_until_sane
    CHECK (overload_snoozed_until >= 'epoch' AND overload_snoozed_until < '2200-01-01 00:00+00')
    NOT VALID,
  ADD CONSTRAINT user_settings_brief_check_at_sane
    CHECK (brief_check_at >= 'epoch' AND brief_check_at < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT user_settings_review_check_at_sane
    CHECK (review_check_at >= 'epoch' AND review_check_at < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT user_settings_quiet_start_sane CHECK (quiet_start < '24:00') NOT VALID,
  ADD CONSTRAINT user_settings_quiet_end_sane CHECK (quiet_end < '24:00') NOT VALID,
  ADD CONSTRAINT user_settings_brief_time_sane CHECK (brief_time < '24:00') NOT VALID,
  ADD CONSTRAINT user_settings_review_time_sane CHECK (review_time < '24:00') NOT VALID;

ALTER TABLE telegram_links
  ADD CONSTRAINT telegram_links_linked_at_sane
    CHECK (linked_at >= 'epoch' AND linked_at < '2200-01-01 00:00+00') NOT VALID;

ALTER TABLE nudges
  ADD CONSTRAINT nudges_claimed_at_sane
    CHECK (claimed_at >= 'epoch' AND claimed_at < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT nudges_sent_at_sane
    CHECK (sent_at >= 'epoch' AND sent_at < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT nudges_next_attempt_at_sane
    CHECK (next_attempt_at >= 'epoch' AND next_attempt_at < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT nudges_episode_at_sane
    CHECK (episode_at >= 'epoch' AND episode_at < '2200-01-01 00:00+00') NOT VALID,
  ADD CONSTRAINT nudges_risk_sane CHECK (risk <> 'NaN') NOT VALID;

ALTER TABLE sync_queue
  ADD CONSTRAINT sync_queue_timestamp_sane
    CHECK ("timestamp" >= 'epoch' AND "timestamp" < '2200-01-01 00:00+00') NOT VALID;
