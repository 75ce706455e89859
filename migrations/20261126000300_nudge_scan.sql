-- What the nudge scan needs (SPEC §5): its cost must follow the number of DUE nudges, not the
-- number of users. Additive only; RLS and the grants of the tables involved are unchanged
-- (table-level grants to `authenticated` cover the new columns).
--
-- How: every row the scan may act on carries a "check at" hint: the earliest moment at which
-- something could become due for it. The scan reads only rows whose hint has passed (through
-- a partial index), decides exactly, and moves the hint forward. Triggers pull a hint earlier
-- whenever an input changes (new activity, unblock, snooze, a rising overload risk, a changed
-- setting), so writes made anywhere (the bot, the Supabase API, a bulk load) are seen.
-- A hint is only ever a lower bound: the ledger (`nudges`) decides what was sent.
--
--   theaters.idle_check_at        next look for an idle nudge (null: this idle episode has
--                                 had all its nudges, until the next activity)
--   global_metrics.overload_check_at  next look for an overload nudge (null: risk below the
--                                 threshold, until it rises)
--   user_settings.brief_check_at  the next daily brief instant; 1970-01-01 ("epoch") means
--                                 "settings changed: compute the next one"; null = brief off
--   user_settings.review_check_at the same for the weekly review

-- The ledger: when a claimed row may be (re)tried, why it failed, what it is about.
ALTER TABLE nudges ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE nudges ADD COLUMN last_error text
  CHECK (last_error IS NULL OR char_length(last_error) <= 500);
-- idle: the last_activity that began the idle episode; brief/review: the scheduled instant.
ALTER TABLE nudges ADD COLUMN episode_at timestamptz;
-- Claimed rows whose lease or retry delay has passed (crash between claim and send, 429...).
CREATE INDEX nudges_retry_due ON nudges (next_attempt_at) WHERE status = 'claimed';

ALTER TABLE theaters ADD COLUMN idle_check_at timestamptz;
ALTER TABLE global_metrics ADD COLUMN overload_check_at timestamptz;
ALTER TABLE user_settings ADD COLUMN brief_check_at timestamptz;
ALTER TABLE user_settings ADD COLUMN review_check_at timestamptz;

CREATE INDEX theaters_idle_check ON theaters (idle_check_at)
  WHERE idle_check_at IS NOT NULL AND status <> 'blocked';
CREATE INDEX global_metrics_overload_check ON global_metrics (overload_check_at)
  WHERE overload_check_at IS NOT NULL;
CREATE INDEX user_settings_brief_check ON user_settings (brief_check_at)
  WHERE brief_check_at IS NOT NULL;
CREATE INDEX user_settings_review_check ON user_settings (review_check_at)
  WHERE review_check_at IS NOT NULL;

-- theaters: a new idle episode starts at every change of last_activity; unblocking or a
-- changed snooze may make a nudge due earlier than the stored hint.
CREATE FUNCTION nudge_theater_hint() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  idle_hours int;
BEGIN
  IF TG_OP = 'INSERT' OR NEW.last_activity IS DISTINCT FROM OLD.last_activity
     OR (OLD.status = 'blocked' AND NEW.status IS DISTINCT FROM 'blocked')
     OR NEW.snoozed_until IS DISTINCT FROM OLD.snoozed_until THEN
    SELECT s.idle_after_hours INTO idle_hours FROM user_settings s
      WHERE s.user_id = NEW.user_id;
    IF TG_OP = 'INSERT' OR NEW.last_activity IS DISTINCT FROM OLD.last_activity THEN
      NEW.idle_check_at := NEW.last_activity + make_interval(hours => coalesce(idle_hours, 72));
    ELSE
      NEW.idle_check_at := least(
        NEW.idle_check_at,
        NEW.last_activity + make_interval(hours => coalesce(idle_hours, 72)));
    END IF;
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER theaters_nudge_hint
  BEFORE INSERT OR UPDATE OF last_activity, status, snoozed_until ON theaters
  FOR EACH ROW EXECUTE FUNCTION nudge_theater_hint();

-- global_metrics: a risk that rises to the user's threshold or above is worth a look now.
CREATE FUNCTION nudge_overload_hint() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  threshold int;
BEGIN
  IF TG_OP = 'INSERT' OR NEW.overload_risk > OLD.overload_risk THEN
    SELECT s.overload_threshold INTO threshold FROM user_settings s
      WHERE s.user_id = NEW.user_id;
    IF NEW.overload_risk >= coalesce(threshold, 80) THEN
      NEW.overload_check_at := 'epoch';
    END IF;
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER global_metrics_nudge_hint
  BEFORE INSERT OR UPDATE OF overload_risk ON global_metrics
  FOR EACH ROW EXECUTE FUNCTION nudge_overload_hint();

-- user_settings: a changed schedule is recomputed by the scan ("epoch"); changed thresholds,
-- quiet hours, time zone or snooze pull the other hints of this user earlier.
CREATE FUNCTION nudge_settings_hint() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  zone_changed boolean := TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone;
BEGIN
  IF zone_changed OR NEW.brief_time IS DISTINCT FROM OLD.brief_time THEN
    NEW.brief_check_at := CASE WHEN NEW.brief_time IS NULL THEN NULL ELSE 'epoch' END;
  END IF;
  IF zone_changed OR NEW.review_day IS DISTINCT FROM OLD.review_day
     OR NEW.review_time IS DISTINCT FROM OLD.review_time THEN
    NEW.review_check_at := CASE WHEN NEW.review_day IS NULL OR NEW.review_time IS NULL
                                THEN NULL ELSE 'epoch' END;
  END IF;
  IF zone_changed OR NEW.idle_after_hours IS DISTINCT FROM OLD.idle_after_hours
     OR NEW.quiet_start IS DISTINCT FROM OLD.quiet_start
     OR NEW.quiet_end IS DISTINCT FROM OLD.quiet_end THEN
    UPDATE theaters t
       SET idle_check_at = least(t.idle_check_at,
                                 t.last_activity + make_interval(hours => NEW.idle_after_hours))
     WHERE t.user_id = NEW.user_id;
  END IF;
  IF zone_changed OR NEW.overload_threshold IS DISTINCT FROM OLD.overload_threshold
     OR NEW.weekly_capacity_hours IS DISTINCT FROM OLD.weekly_capacity_hours
     OR NEW.overload_snoozed_until IS DISTINCT FROM OLD.overload_snoozed_until
     OR NEW.quiet_start IS DISTINCT FROM OLD.quiet_start
     OR NEW.quiet_end IS DISTINCT FROM OLD.quiet_end THEN
    UPDATE global_metrics g SET overload_check_at = 'epoch'
     WHERE g.user_id = NEW.user_id AND g.overload_risk >= NEW.overload_threshold;
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER user_settings_nudge_hint
  BEFORE INSERT OR UPDATE OF timezone, quiet_start, quiet_end, brief_time, review_day,
    review_time, idle_after_hours, overload_threshold, weekly_capacity_hours,
    overload_snoozed_until ON user_settings
  FOR EACH ROW EXECUTE FUNCTION nudge_settings_hint();

-- Hints for the rows that exist already.
UPDATE theaters t SET idle_check_at = t.last_activity + make_interval(
  hours => coalesce((SELECT s.idle_after_hours FROM user_settings s
                     WHERE s.user_id = t.user_id), 72));
UPDATE global_metrics g SET overload_check_at = 'epoch'
 WHERE g.overload_risk >= coalesce((SELECT s.overload_threshold FROM user_settings s
                                    WHERE s.user_id = g.user_id), 80);
UPDATE user_settings SET brief_check_at = 'epoch' WHERE brief_time IS NOT NULL;
UPDATE user_settings SET review_check_at = 'epoch'
 WHERE review_day IS NOT NULL AND review_time IS NOT NULL;
