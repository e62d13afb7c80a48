-- The demo database (the same rows npm run demo seeds), created by the postgres image's init step.
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, card text, country text);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace',    'ada@example.com',    '4111 1111 1111 1111', 'GB'),
  (2, 'Grace Hopper',    'grace@example.com',  '5500 0000 0000 0004', 'US'),
  (3, 'Edsger Dijkstra', 'edsger@example.com', '3400 0000 0000 009',  'NL');
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, total numeric(10,2), placed_at date);
INSERT INTO orders SELECT g, 1 + g % 3, (g * 7.25)::numeric(10,2), date '2026-01-01' + g FROM generate_series(1, 40) g;
