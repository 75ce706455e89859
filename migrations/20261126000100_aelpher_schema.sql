-- Aelpher 2.0 schema of record: the seed migration (seeds/aelpher-2.0-schema.md), verbatim
-- apart from the uuid-ossp line below. Everything the bot adds lives in later migrations.

-- Enable UUID extension
-- CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
-- ^ the only change to the seed: gen_random_uuid() is core PostgreSQL (13+), uuid-ossp is
--   not needed, and the embedded server does not ship it.

-- Theaters table
CREATE TABLE theaters (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID REFERENCES auth.users(id) ON DELETE CASCADE NOT NULL,
  arm_type TEXT CHECK (arm_type IN ('ibm', 'cs')) NOT NULL,
  status TEXT CHECK (status IN ('active', 'warm', 'idle', 'blocked')) DEFAULT 'idle',
  total_progress NUMERIC(5,2) DEFAULT 0 CHECK (total_progress >= 0 AND total_progress <= 100),
  energy_allocation INTEGER DEFAULT 50 CHECK (energy_allocation >= 0 AND energy_allocation <= 100),
  last_activity TIMESTAMPTZ DEFAULT now(),
  created_at TIMESTAMPTZ DEFAULT now(),
  updated_at TIMESTAMPTZ DEFAULT now(),
  UNIQUE(user_id, arm_type)
);

-- NBA items table
CREATE TABLE nba_items (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID REFERENCES auth.users(id) ON DELETE CASCADE NOT NULL,
  arm_type TEXT CHECK (arm_type IN ('ibm', 'cs')) NOT NULL,
  title TEXT NOT NULL,
  description TEXT,
  stale_days NUMERIC(5,1) DEFAULT 0,
  gap INTEGER DEFAULT 0 CHECK (gap >= 0 AND gap <= 5),
  has_early_progress_bonus BOOLEAN DEFAULT FALSE,
  is_manually_selected BOOLEAN DEFAULT FALSE,
  is_locked BOOLEAN DEFAULT FALSE,
  is_current BOOLEAN DEFAULT FALSE,
  created_at TIMESTAMPTZ DEFAULT now(),
  last_updated TIMESTAMPTZ DEFAULT now()
);

-- Execution logs table
CREATE TABLE execution_logs (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID REFERENCES auth.users(id) ON DELETE CASCADE NOT NULL,
  arm_type TEXT CHECK (arm_type IN ('ibm', 'cs')) NOT NULL,
  action TEXT NOT NULL,
  details TEXT,
  duration INTEGER CHECK (duration IS NULL OR duration > 0),
  timestamp TIMESTAMPTZ DEFAULT now()
);

-- Reflections table
CREATE TABLE reflections (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID REFERENCES auth.users(id) ON DELETE CASCADE NOT NULL,
  arm_type TEXT CHECK (arm_type IN ('ibm', 'cs')) NOT NULL,
  evidence TEXT NOT NULL,
  context TEXT,
  timestamp TIMESTAMPTZ DEFAULT now()
);

-- Global metrics table
CREATE TABLE global_metrics (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID REFERENCES auth.users(id) ON DELETE CASCADE NOT NULL UNIQUE,
  combined_progress NUMERIC(5,2) DEFAULT 0,
  energy_allocation_ibm INTEGER DEFAULT 50,
  energy_allocation_cs INTEGER DEFAULT 50,
  overload_risk NUMERIC(5,2) DEFAULT 0,
  last_sync_time TIMESTAMPTZ DEFAULT now(),
  last_computed TIMESTAMPTZ DEFAULT now()
);

-- Sync queue table
CREATE TABLE sync_queue (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID REFERENCES auth.users(id) ON DELETE CASCADE NOT NULL,
  operation TEXT CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')) NOT NULL,
  table_name TEXT NOT NULL,
  payload JSONB NOT NULL,
  timestamp TIMESTAMPTZ DEFAULT now(),
  synced BOOLEAN DEFAULT FALSE,
  retries INTEGER DEFAULT 0
);

-- Enable RLS on all tables
ALTER TABLE theaters ENABLE ROW LEVEL SECURITY;
ALTER TABLE nba_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE execution_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE reflections ENABLE ROW LEVEL SECURITY;
ALTER TABLE global_metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE sync_queue ENABLE ROW LEVEL SECURITY;

-- Create RLS policies
CREATE POLICY "Users own their theaters" ON theaters FOR ALL USING (auth.uid() = user_id);
CREATE POLICY "Users own their NBA items" ON nba_items FOR ALL USING (auth.uid() = user_id);
CREATE POLICY "Users own their logs" ON execution_logs FOR ALL USING (auth.uid() = user_id);
CREATE POLICY "Users own their reflections" ON reflections FOR ALL USING (auth.uid() = user_id);
CREATE POLICY "Users own their metrics" ON global_metrics FOR ALL USING (auth.uid() = user_id);
CREATE POLICY "Users own their sync queue" ON sync_queue FOR ALL USING (auth.uid() = user_id);

-- Create indexes
CREATE INDEX idx_theaters_user ON theaters(user_id);
CREATE INDEX idx_nba_items_user_arm ON nba_items(user_id, arm_type);
CREATE INDEX idx_nba_items_current ON nba_items(is_current) WHERE is_current = TRUE;
CREATE INDEX idx_execution_logs_user_arm ON execution_logs(user_id, arm_type);
CREATE INDEX idx_execution_logs_timestamp ON execution_logs(timestamp DESC);
CREATE INDEX idx_reflections_user_arm ON reflections(user_id, arm_type);
CREATE INDEX idx_sync_queue_pending ON sync_queue(synced) WHERE synced = FALSE;

-- Create updated_at trigger function
CREATE OR REPLACE FUNCTION update_updated_at()
RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at = now();
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- Apply trigger to theaters
CREATE TRIGGER theaters_updated_at
  BEFORE UPDATE ON theaters
  FOR EACH ROW
  EXECUTE FUNCTION update_updated_at();
