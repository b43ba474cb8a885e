ALTER TABLE history DROP COLUMN related_id;
