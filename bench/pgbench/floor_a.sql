-- Floor A: one round trip that does nothing.  The hot-token verify is
-- divided by this (the app server passes the secret as a parameter, no lookup).
SELECT 1;
