DROP TABLE throttle_salt;
DROP TABLE login_failures;
