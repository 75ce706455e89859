-- Supabase compatibility for plain PostgreSQL (the embedded server, a local Postgres, CI).
--
-- Hosted Supabase already has everything below and forbids creating objects in its `auth`
-- schema, so the whole file is one DO block that does nothing where an `auth` schema exists.
-- That keeps it safe to apply with `python -m bot migrate` or with the Supabase CLI alike.
--
-- What it mirrors (see docs/architecture.md for the sources):
--   * the API roles anon, authenticated (noinherit at creation, later inherit), service_role
--     (bypassrls), granted to the current (owner) role so it may SET ROLE to them;
--   * a minimal auth.users with the columns our foreign keys and account creation use;
--   * auth.uid(), auth.role(), auth.email() and auth.jwt() in their current (coalesce) form,
--     reading both request.jwt.claims and the legacy request.jwt.claim.* settings;
--   * usage on schema public for the API roles, and NO default privileges on new tables:
--     hosted Supabase stopped granting new public tables automatically in 2026, so every
--     migration of ours grants explicitly.
DO $compat$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'auth') THEN
    RAISE NOTICE 'auth schema present (Supabase): compat migration skipped';
    RETURN;
  END IF;

  -- Roles are cluster-wide: another database on the same server may have made them already.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
  END IF;
  ALTER ROLE anon INHERIT;
  ALTER ROLE authenticated INHERIT;
  ALTER ROLE service_role INHERIT;
  EXECUTE format('GRANT anon, authenticated, service_role TO %I', current_user);

  CREATE SCHEMA auth;
  GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;

  CREATE TABLE auth.users (
    instance_id uuid,
    id uuid PRIMARY KEY,
    aud varchar(255),
    role varchar(255),
    email varchar(255) UNIQUE,
    phone text UNIQUE,
    encrypted_password varchar(255),
    email_confirmed_at timestamptz,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    is_super_admin boolean,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    deleted_at timestamptz,
    is_anonymous boolean NOT NULL DEFAULT false
  );

  CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $fn$
    SELECT coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
  $fn$;

  CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $fn$
    SELECT coalesce(
      nullif(current_setting('request.jwt.claim.role', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
  $fn$;

  CREATE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $fn$
    SELECT coalesce(
      nullif(current_setting('request.jwt.claim.email', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
  $fn$;

  CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $fn$
    SELECT coalesce(
      nullif(current_setting('request.jwt.claim', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
  $fn$;

  GRANT EXECUTE ON FUNCTION auth.uid(), auth.role(), auth.email(), auth.jwt()
    TO anon, authenticated, service_role;

  GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
END
$compat$;
