
-- Helpers of this upgrade only.
DROP FUNCTION pixl_upgrade_copy_grants(aclitem[], regprocedure);
