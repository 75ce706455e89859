-- What the bot sent about a focus session, and its default length (services/focus.py;
-- services/repos/focus_messages.py; handlers/focus.py). Additive.
--
-- focus_messages: one row per session the bot started in a chat: where the session message
-- is (the once-a-minute redraw edits it), the text it shows now, and the claims that make
-- "Time's up" and "Still working?" go out once with several instances running the same jobs
-- (an UPDATE ... RETURNING claims, like the nudges ledger). The bot's alone: no API role
-- reaches it, so a user cannot point the bot's edits or messages at another chat.
CREATE TABLE focus_messages (
  session_id uuid PRIMARY KEY REFERENCES focus_sessions(id) ON DELETE CASCADE,
  chat_id bigint NOT NULL,
  message_id bigint NOT NULL,
  -- the text the message shows (the redraw edits only when it changes)
  shown text CHECK (char_length(shown) <= 4096),
  -- Telegram refused an edit (the message is gone or too old): no more redraws
  edits_stopped boolean NOT NULL DEFAULT false,
  -- the planned length whose "Time's up" went out (+10 min raises the length: another one)
  times_up_for integer,
  -- when "Still working?" went out (once per session)
  still_asked_at timestamptz
);
ALTER TABLE focus_messages ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON focus_messages FROM PUBLIC, anon, authenticated;

-- A default length for focus sessions started without one (▶ Start, /focus cs); NULL: none.
ALTER TABLE user_settings ADD COLUMN focus_minutes integer
  CONSTRAINT user_settings_focus_minutes_range CHECK (focus_minutes BETWEEN 1 AND 1440);
