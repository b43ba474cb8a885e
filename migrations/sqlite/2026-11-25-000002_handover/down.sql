DROP INDEX history_by_item;
DROP TABLE handover_bundles;
