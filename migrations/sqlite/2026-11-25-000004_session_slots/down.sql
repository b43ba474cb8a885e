DROP TABLE session_slots;
