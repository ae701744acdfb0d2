//! The requests the SDK bench traces: a shop's API, varied as production traffic is. Routes
//! with ids in their paths and query strings, a handful of user agents, client addresses from
//! several networks (IPv6 too), SQL of four shapes on two databases with literals that change,
//! calls to three downstream services (one of which carries an e-mail address in its URL),
//! 4xx and 5xx answers and errors, and personal data mixed in: e-mail addresses in metadata,
//! card-like numbers in a query string. Generated once, from a fixed seed, before measuring.

/// One request's varying parts; the Roentgen and OpenTelemetry requests record the same ones.
pub struct Request {
    pub method: &'static str,
    pub url: String,
    pub route: &'static str,
    pub user_agent: &'static str,
    pub client_ip: String,
    pub order_id: String,
    pub items: u64,
    pub total: f64,
    /// An e-mail address recorded as metadata (personal data the scrubber must remove).
    pub customer: Option<String>,
    pub db_name: &'static str,
    pub db_type: &'static str,
    pub db_system: &'static str,
    pub db_url: &'static str,
    pub query: String,
    pub remote: &'static str,
    pub remote_method: &'static str,
    pub remote_url: String,
    pub remote_status: u16,
    pub status: u16,
}

/// Distinct requests the bench cycles through (a prime, so they do not line up with the
/// emitter's batches or the bench's flushes).
pub const DISTINCT: usize = 509;

const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "okhttp/4.12.0",
    "shop-mobile/3.14.1 (Android 15)",
];

const CATEGORIES: [&str; 5] = ["books", "garden", "toys", "kitchen", "outdoor"];

/// A small deterministic generator (xorshift64*): the workload is the same in every run.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The bench's [`DISTINCT`] requests.
pub fn requests() -> Vec<Request> {
    let mut d = Draw(0x9E37_79B9_7F4A_7C15);
    (0..DISTINCT).map(|_| request(&mut d)).collect()
}

fn request(d: &mut Draw) -> Request {
    let order = d.below(9_000_000) + 1_000_000;
    let (method, route, url) = match d.below(10) {
        0..=2 => (
            "GET",
            "/api/orders/{id}",
            format!("https://shop.example.com/api/orders/{order}"),
        ),
        3..=4 => (
            "POST",
            "/api/checkout",
            "https://shop.example.com/api/checkout".to_owned(),
        ),
        5..=6 => (
            "GET",
            "/api/products",
            format!(
                "https://shop.example.com/api/products?category={}&page={}",
                d.pick(&CATEGORIES),
                d.below(20)
            ),
        ),
        7 => (
            "PUT",
            "/api/cart/{id}",
            format!("https://shop.example.com/api/cart/{:016x}", d.next()),
        ),
        8 if d.one_in(4) => (
            // A card number pasted into a query string.
            "GET",
            "/api/pay",
            format!(
                "https://shop.example.com/api/pay?card=4111{:012}",
                d.below(1_000_000_000_000)
            ),
        ),
        _ => (
            "DELETE",
            "/api/cart/{id}/items/{n}",
            format!(
                "https://shop.example.com/api/cart/{}/items/{}",
                d.below(100_000),
                d.below(40)
            ),
        ),
    };
    let client_ip = match d.below(8) {
        0 => format!("2001:db8:{:x}::{:x}", d.below(65_536), d.below(65_536)),
        1..=3 => format!("198.51.100.{}", d.below(254) + 1),
        _ => format!("203.0.113.{}", d.below(254) + 1),
    };
    let catalog = route == "/api/products";
    let (db_name, db_type, db_system, db_url) = if catalog {
        (
            "catalog@catalog-db.internal",
            "MySQL",
            "mysql",
            "mysql://catalog-db.internal:3306/catalog",
        )
    } else {
        (
            "orders@db.example.com",
            "PostgreSQL",
            "postgresql",
            "postgresql://db.example.com:5432/orders",
        )
    };
    let query = match (catalog, d.below(3)) {
        (true, _) => format!(
            "SELECT id, name, price FROM products WHERE category = '{}' LIMIT 20 OFFSET {}",
            d.pick(&CATEGORIES),
            d.below(400)
        ),
        (false, 0) => format!("SELECT id, status, amount FROM orders WHERE id = {order}"),
        (false, 1) => "INSERT INTO orders (id, amount, email) VALUES ($1, $2, $3)".to_owned(),
        (false, _) => format!(
            "UPDATE carts SET items = {} WHERE session = '{:016x}'",
            d.below(12),
            d.next()
        ),
    };
    let customer = d
        .one_in(3)
        .then(|| format!("customer{}@mail.example.org", d.below(100_000)));
    let (remote, remote_method, remote_url) = match d.below(8) {
        0..=3 => (
            "payments",
            "POST",
            format!("https://payments.example.com/v1/charges/ch_{:x}", d.next()),
        ),
        4..=6 => (
            "inventory",
            "GET",
            format!(
                "http://inventory.internal:8080/v2/stock/SKU-{}",
                d.below(50_000)
            ),
        ),
        _ => (
            "notifications",
            "POST",
            format!(
                "https://notify.example.com/send?to=buyer{}%40mail.example.org",
                d.below(100_000)
            ),
        ),
    };
    let remote_status = if d.one_in(20) { 503 } else { 200 };
    let status = match d.below(40) {
        0..=2 => 404,
        3 => 500,
        _ if remote_status == 503 => 502,
        _ => 200,
    };
    Request {
        method,
        url,
        route,
        user_agent: d.pick(&USER_AGENTS),
        client_ip,
        order_id: format!("ord-{order}"),
        items: d.below(12) + 1,
        total: d.below(100_000) as f64 / 100.0,
        customer,
        db_name,
        db_type,
        db_system,
        db_url,
        query,
        remote,
        remote_method,
        remote_url,
        remote_status,
        status,
    }
}
