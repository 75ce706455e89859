-- The one open question per chat (handlers/conversation.py; services/repos/open_questions.py):
-- which flow asked it, at which step, the typed draft so far, and the token its buttons carry.
-- Any instance answers any step: the row is read in the same round trip that opens the
-- update's unit of work, and replaced or deleted in the same transaction as the write the
-- answer makes. Keyed on the chat and the Telegram user, so it also serves people who are not
-- linked yet (/link). The bot's alone: no API role reaches it.
CREATE TABLE open_questions (
  chat_id bigint NOT NULL,
  telegram_user_id bigint NOT NULL,
  flow text NOT NULL CHECK (char_length(flow) <= 40),
  step text NOT NULL CHECK (char_length(step) <= 40),
  draft jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (pg_column_size(draft) <= 65536),
  token text NOT NULL CHECK (char_length(token) BETWEEN 1 AND 16),
  asked_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (chat_id, telegram_user_id)
);
CREATE INDEX open_questions_expiry ON open_questions (expires_at);
ALTER TABLE open_questions ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON open_questions FROM PUBLIC, anon, authenticated;
