DROP TABLE waiting_tickets;
