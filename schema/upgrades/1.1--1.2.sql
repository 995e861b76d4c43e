-- 1.1 -> 1.2: the state changes; the Makefile appends schema/code/, which
-- (re)creates every function, view, trigger, policy, grant and comment.

-- pixl_usage_rows returns the rows of the one stitching of the rollups
-- (pixl_usage_rollups, every column) instead of its own column list: a
-- result type CREATE OR REPLACE cannot change.  Internal, granted to no one.
DROP FUNCTION @extschema@.pixl_usage_rows(text, timestamptz, boolean);
