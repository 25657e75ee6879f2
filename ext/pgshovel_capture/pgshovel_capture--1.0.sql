\echo Use "CREATE EXTENSION pgshovel_capture" to load this file. \quit

-- Fired AFTER INSERT, UPDATE or DELETE ... FOR EACH STATEMENT with transition tables; its
-- arguments (written by pgshovel set create) name the queue, the event fields and the columns.
-- SECURITY DEFINER, as pgshovel's PL/pgSQL capture functions are: application roles write to a
-- captured table without being granted PgQ's pgq_writer. Nobody but its owner may attach it to
-- a table: its arguments say which table it inserts into.
CREATE FUNCTION capture_statement() RETURNS trigger
  LANGUAGE c SECURITY DEFINER
  AS 'MODULE_PATHNAME', 'capture_statement';

REVOKE ALL ON FUNCTION capture_statement() FROM PUBLIC;
