-- SELECT 1: one round trip that does nothing (the call-shape floor is shown ÷ this).
SELECT 1;
