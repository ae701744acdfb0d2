#!/usr/bin/env python3
"""Generates the scrubber's labeled corpus (deterministic: fixed seed).

pii.jsonl:   segment documents with planted PII; each line {"doc": ..., "planted": [{"kind", "value", "field"}]}
             where `value` is the sensitive text that must not survive scrubbing.
clean.jsonl: documents full of look-alikes (order numbers, UUIDs, hex ids, versions, prices,
             Luhn-invalid digit runs, timestamps...); {"doc": ..., "lookalikes": [...]} must all survive.

Run: python3 tests/data/pii/generate.py  (rewrites both files next to this script)
"""
import base64, json, os, random, string

R = random.Random(20261129)
HERE = os.path.dirname(os.path.abspath(__file__))

def hexid(n): return "".join(R.choice("0123456789abcdef") for _ in range(n))
def word(n=6): return "".join(R.choice(string.ascii_lowercase) for _ in range(n))
def alnum(n, chars=string.ascii_letters + string.digits): return "".join(R.choice(chars) for _ in range(n))

def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix] + [R.randint(0, 9) for _ in range(length - len(prefix) - 1)]
    for check in range(10):
        d = digits + [check]
        s = 0
        for i, x in enumerate(reversed(d)):
            if i % 2 == 1:
                x *= 2
                if x > 9: x -= 9
            s += x
        if s % 10 == 0:
            return "".join(map(str, d))

def group(num, sizes, sep):
    out, i = [], 0
    for s in sizes:
        out.append(num[i:i + s]); i += s
    return sep.join(out)

# ---- generators per kind: return (text_as_written, sensitive_value) ----
TLDS = ["com", "org", "net", "io", "co.kr", "de", "example", "dev", "co.uk", "info"]
def email():
    local = R.choice([word(5), word(4) + "." + word(6), word(3) + "+" + word(4), word(4) + "_" + str(R.randint(1, 999)),
                      word(2) + "-" + word(5), word(6).upper()])
    dom = R.choice([word(7), word(5) + "-" + word(4), "mail." + word(6), word(4) + "." + word(5)])
    v = f"{local}@{dom}.{R.choice(TLDS)}"
    return v, v

CARD_SPECS = [("4", 16), ("4", 13), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15), ("37", 15),
              ("6011", 16), ("65", 16), ("3530", 16), ("36", 14), ("62", 16), ("62", 19), ("4", 19)]
def card():
    prefix, length = R.choice(CARD_SPECS)
    n = luhn_complete(prefix, length)
    style = R.choice(["plain", "space", "dash"])
    if style == "plain":
        return n, n
    sep = " " if style == "space" else "-"
    if length == 15: sizes = [4, 6, 5]
    elif length == 14: sizes = [4, 6, 4]
    elif length == 13: sizes = [4, 4, 5]
    elif length == 19: sizes = [4, 4, 4, 4, 3]
    else: sizes = [4, 4, 4, 4]
    v = group(n, sizes, sep)
    return v, v

def ssn():
    area = R.choice([a for a in range(1, 900) if a != 666])
    v = f"{area:03d}{R.choice('- ')}{R.randint(1, 99):02d}"
    v = v + v[3] + f"{R.randint(1, 9999):04d}"
    return v, v

def kr_rrn():
    while True:
        yy, mm = R.randint(0, 99), R.randint(1, 12)
        dd = R.randint(1, 28)
        g = R.choice([1, 2, 3, 4]) if yy < 25 else R.choice([1, 2])
        body = f"{yy:02d}{mm:02d}{dd:02d}{g}" + "".join(str(R.randint(0, 9)) for _ in range(5))
        w = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
        check = (11 - sum(int(a) * b for a, b in zip(body, w)) % 11) % 10
        full = body + str(check)
        v = full if R.random() < 0.25 else full[:6] + "-" + full[6:]
        return v, v

def phone():
    a, b, c = R.randint(201, 989), R.randint(200, 999), R.randint(0, 9999)
    m, n = R.randint(1000, 9999), R.randint(1000, 9999)
    v = R.choice([
        f"+1{a}{b}{c:04d}", f"+1 {a} {b} {c:04d}", f"+1-{a}-{b}-{c:04d}", f"+1 ({a}) {b}-{c:04d}",
        f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}", f"1-{a}-{b}-{c:04d}",
        f"+82 10-{m}-{n}", f"+821{R.choice('016789')}{m}{n}", f"010-{m}-{n}", f"010 {m} {n}", f"010{m}{n}",
        f"02-{b}-{n}", f"031-{m}-{n}", f"+44 20 {m} {n}", f"020 {m} {n}", f"+49 30 {b}{n}", f"+33 1 {m} {n}",
    ])
    return v, v

def ipv4():
    v = ".".join(str(x) for x in [R.choice([10, 172, 192, 203, 198, 81, 8, 100, 52]), R.randint(0, 255), R.randint(0, 255), R.randint(1, 254)])
    return v, v

def ipv6():
    groups = [hexid(R.randint(1, 4)) for _ in range(8)]
    groups[0] = R.choice(["2001", "fe80", "2a00", "2600", "fd12"])
    style = R.choice(["full", "compressed", "compressed2", "tail"])
    if style == "full": v = ":".join(groups)
    elif style == "compressed": v = ":".join(groups[:3]) + "::" + ":".join(groups[6:])
    elif style == "compressed2": v = groups[0] + "::" + groups[7] if any(ch.isdigit() for ch in groups[7] + groups[0]) else "2001::" + groups[7]
    else: v = "2001:db8::" + str(R.randint(1, 9999))
    return v, v

def aws_access_key():
    v = R.choice(["AKIA", "ASIA"]) + alnum(16, string.ascii_uppercase + string.digits)
    return v, v

def aws_secret_key():
    while True:
        v = alnum(40, string.ascii_letters + string.digits + "/+")
        if any(c.isupper() for c in v) and any(c.islower() for c in v) and any(c.isdigit() for c in v):
            break
    return R.choice([v, f"aws_secret_access_key={v}", f"AWS_SECRET_ACCESS_KEY: {v}", f"secret {v} leaked"]), v

def b64url(obj): return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
def jwt():
    v = ".".join([b64url({"alg": R.choice(["HS256", "RS256"]), "typ": "JWT"}), b64url({"sub": str(R.randint(1, 10**6)), "name": word(6), "iat": R.randint(10**9, 2 * 10**9)}),
                  base64.urlsafe_b64encode(bytes(R.randint(0, 255) for _ in range(32))).decode().rstrip("=")])
    return v, v

def bearer():
    tok = alnum(R.randint(20, 40), string.ascii_letters + string.digits + "-._~")
    if not any(c.isdigit() for c in tok): tok += "7"
    return R.choice([f"Bearer {tok}", f"Authorization: Bearer {tok}", f"authorization=Bearer {tok}", f"bearer {tok}", f"Basic {tok}"]), tok

def secret():
    pw = alnum(R.randint(8, 20), string.ascii_letters + string.digits + "!#%*()")
    text = R.choice([f"password={pw}", f"passwd: {pw}", f"pwd={pw}", f"db_password={pw}", f"api_key={pw}", f"apikey: {pw}",
                     f"token={pw}", f"access_token={pw}", f"client_secret={pw}", f"\"password\": \"{pw}\"", f"x-api-key: {pw}",
                     f"Server=db;User Id=app;Password={pw};", f"host=db user=app password={pw} dbname=orders", f"?user=bob&token={pw}&page=2"])
    return text, pw

def url_userinfo():
    user, pw = word(5), alnum(10)
    v = R.choice([f"{user}:{pw}", f"{user}.{word(3)}:{pw}"])
    return f"{R.choice(['https', 'postgresql', 'mysql', 'redis', 'amqp', 'ftp'])}://{v}@{word(6)}.example.com:{R.randint(1000, 9999)}/{word(4)}", v

KINDS = {"email": email, "card": card, "ssn": ssn, "kr_rrn": kr_rrn, "phone": phone, "ipv4": ipv4, "ipv6": ipv6,
         "aws_access_key": aws_access_key, "aws_secret_key": aws_secret_key, "jwt": jwt, "bearer": bearer,
         "secret": secret, "url_userinfo": url_userinfo}
HINT_KEYS = {"email": ["customer_email", "email", "contactEmail"], "card": ["card_number", "pan", "creditCard"], "ssn": ["ssn"],
             "kr_rrn": ["rrn", "jumin"], "phone": ["phone", "mobile_number", "phoneNumber"], "secret": ["password", "api_key", "accessToken"]}
SENTENCES = ["{}", "value {} here", "failed for {}", "user={} ok", "[{}]", "<{}>", "'{}'", "{}, then retried", "contact: {};"]

def base_doc(name="checkout-api"):
    return {"name": name, "id": hexid(16), "trace_id": f"1-{hexid(8)}-{hexid(24)}", "start_time": 1795905087.0 + R.random(),
            "end_time": 1795905088.0 + R.random(), "http": {"request": {"method": "POST", "url": "https://shop.example.com/api/checkout"},
            "response": {"status": 200}}, "annotations": {"order_id": "ord-" + hexid(6)}, "metadata": {"default": {}},
            "aws": {"xray": {"sdk": "X-Ray for Python", "sdk_version": "2.15.0"}}}

def sub_doc(parent, depth):
    sub = {"name": R.choice(["payments.example.com", "orders@db", "DynamoDB"]), "id": hexid(16), "start_time": parent["start_time"], "end_time": parent["end_time"], "namespace": "remote"}
    parent.setdefault("subsegments", []).append(sub)
    return sub if depth <= 1 else sub_doc(sub, depth - 1)

FIELDS = ["annotations", "metadata", "metadata_hint", "http.request.url", "http.request.client_ip", "user", "sql.sanitized_query",
          "sql.url", "sql.connection_string", "cause.exceptions.message", "aws", "http.request.user_agent", "subsegment"]

def occupied(doc, field):
    path = {"http.request.url": ("http", "request", "url"), "http.request.client_ip": ("http", "request", "client_ip"),
            "http.request.user_agent": ("http", "request", "user_agent"), "user": ("user",), "aws": ("aws", "request_note"),
            "sql.sanitized_query": ("sql", "sanitized_query"), "sql.url": ("sql", "url"), "sql.connection_string": ("sql", "connection_string")}.get(field)
    node = doc
    for part in path or ():
        if not isinstance(node, dict) or part not in node: return False
        node = node[part]
    return path is not None and not (field == "http.request.url" and node == "https://shop.example.com/api/checkout")

def plant(doc, kind, text, field):
    s = R.choice(SENTENCES).format(text)
    if occupied(doc, field):
        field = "annotations"
    if field == "subsegment":
        target = sub_doc(doc, R.randint(1, 3))
        field = R.choice(["annotations", "metadata", "cause.exceptions.message", "http.request.url"])
        return "subsegments." + plant(target, kind, text, field)
    if field == "annotations":
        doc.setdefault("annotations", {})[f"note_{len(doc.get('annotations', {}))}"] = s
    elif field == "metadata":
        doc.setdefault("metadata", {}).setdefault("app", {}).setdefault("request", {})[f"field{R.randint(0, 10**6)}"] = [s] if R.random() < 0.3 else s
    elif field == "metadata_hint":
        if kind not in HINT_KEYS: return plant(doc, kind, text, "metadata")
        doc.setdefault("metadata", {}).setdefault("payment", {})[R.choice(HINT_KEYS[kind]) + ("" if R.random() < 0.5 else "")] = text
    elif field == "http.request.url":
        if kind == "url_userinfo": url = text
        else: url = f"https://shop.example.com/api/find?ref={hexid(4)}&q={text.replace(' ', '%20') if kind in ('ssn','card','phone') and R.random() < 0.0 else text}"
        doc.setdefault("http", {}).setdefault("request", {})["url"] = url
    elif field == "http.request.client_ip":
        if kind not in ("ipv4", "ipv6"): return plant(doc, kind, text, "user")
        doc.setdefault("http", {}).setdefault("request", {})["client_ip"] = text
    elif field == "http.request.user_agent":
        doc.setdefault("http", {}).setdefault("request", {})["user_agent"] = f"client/1.0 ({s})"
    elif field == "user":
        if "user" in doc: return plant(doc, kind, text, "annotations")
        doc["user"] = s
    elif field == "sql.sanitized_query":
        doc.setdefault("sql", {})["sanitized_query"] = f"SELECT * FROM users WHERE note = '{text}' AND id = %s"
    elif field == "sql.url":
        doc.setdefault("sql", {})["url"] = text if kind == "url_userinfo" else f"postgresql://db.example.com:5432/orders?application_name={text}"
    elif field == "sql.connection_string":
        doc.setdefault("sql", {})["connection_string"] = f"Server=db.example.com;Database=orders;Note={s};"
    elif field == "cause.exceptions.message":
        doc.setdefault("cause", {"working_directory": "/srv/app", "exceptions": []})["exceptions"].append(
            {"id": hexid(16), "message": f"PaymentError: {s}", "type": "PaymentError", "stack": [{"path": "app.py", "line": R.randint(1, 400), "label": "charge"}]})
        doc["fault"] = True
    elif field == "aws":
        doc.setdefault("aws", {})["request_note"] = s
    return field

def pii_corpus():
    items = [(k, *KINDS[k]()) for k in KINDS for _ in range(90)]
    R.shuffle(items)
    lines, i = [], 0
    while i < len(items):
        doc, planted = base_doc(), []
        for kind, text, value in items[i:i + R.randint(3, 7)]:
            field = plant(doc, kind, text, R.choice(FIELDS))
            planted.append({"kind": kind, "value": value, "field": field})
            i += 1
        lines.append({"doc": doc, "planted": planted})
    return lines

LOOKALIKES = [
    lambda: f"ORD-{R.randint(2019, 2026)}-{R.randint(0, 999999):06d}", lambda: f"ord-{hexid(6)}",
    lambda: f"{hexid(8)}-{hexid(4)}-4{hexid(3)}-a{hexid(3)}-{hexid(12)}", lambda: hexid(16), lambda: hexid(24), lambda: hexid(40),
    lambda: f"{R.randint(0, 20)}.{R.randint(0, 40)}.{R.randint(0, 30)}", lambda: f"v{R.randint(1, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}",
    lambda: f"{R.randint(1, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}-beta.{R.randint(1, 9)}", lambda: f"10.0.{R.randint(10000, 22000)}.{R.randint(1, 999)}",
    lambda: f"{R.randint(1, 999)}.{R.randint(0, 99):02d}", lambda: f"${R.randint(1, 9)},{R.randint(0, 999):03d}.{R.randint(0, 99):02d}",
    lambda: f"{R.randint(1, 500)},{R.randint(0, 99):02d} EUR",
    lambda: next(x for x in iter(lambda: "4" + "".join(str(R.randint(0, 9)) for _ in range(15)), None) if not luhn_ok(x)),
    lambda: (lambda n: " ".join(n[i:i + 4] for i in range(0, 16, 4)))(next(x for x in iter(lambda: "5" + "".join(str(R.randint(0, 9)) for _ in range(15)), None) if not luhn_ok(x))),
    lambda: str(R.randint(1700000000000, 1800000000000)), lambda: str(R.randint(1700000000, 1800000000)),
    lambda: f"2026-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}T{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}.{R.randint(0, 999):03d}Z",
    lambda: f"{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}", lambda: f"{R.randint(1, 28):02d}/{R.randint(1, 12):02d}/2026",
    lambda: f"1-{hexid(8)}-{hexid(24)}", lambda: f"arn:aws:dynamodb:us-east-1:{R.randint(10**11, 10**12 - 1)}:table/orders",
    lambda: f"{R.randint(1, 9000)}ms", lambda: f"A-{R.randint(1, 99)}", lambda: f"SKU-{R.randint(10000, 99999)}-{word(2).upper()}",
    lambda: f"https://api.example.com/v1/orders/{hexid(8)}?page={R.randint(1, 9)}&limit=50", lambda: "SELECT id, email FROM users WHERE email = %s AND password = ?",
    lambda: f"/srv/app/{word(5)}.py:{R.randint(1, 999)}", lambda: f"{word(3)}-{hexid(10)}-{word(5)}", lambda: f"localhost:{R.randint(1024, 65000)}",
    lambda: f"ISBN 978-{R.randint(0, 9)}-{R.randint(10, 99)}-{R.randint(100000, 999999)}-{R.randint(0, 9)}", lambda: f"{R.randint(10000, 99999)}-{R.randint(1000, 9999)}",
    lambda: f"{R.uniform(-90, 90):.4f},{R.uniform(-180, 180):.4f}", lambda: f"std::{word(4)}::{word(6)}",
    lambda: ":".join(hexid(2) for _ in range(6)), lambda: base64.b64encode(bytes(R.randint(0, 255) for _ in range(32))).decode(),
    lambda: f"user-{R.randint(1, 9999)}", lambda: f"user@localhost", lambda: f"@{word(5)}/{word(6)}@{R.randint(1, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}",
    lambda: f"V4KQ{alnum(48, string.ascii_uppercase + string.digits)}", lambda: f"token_type=refresh", lambda: f"max_tokens={R.randint(100, 4000)}",
    lambda: f"retry {R.randint(1, 5)} of 5 after {R.randint(100, 900)} ms", lambda: f"{R.randint(1, 99)}%", lambda: f"#{R.randint(1000, 99999)}",
    lambda: f"+{R.randint(1, 99)}.{R.randint(0, 99)}%", lambda: f"basic plan", lambda: f"{R.randint(100, 999)}-{R.randint(100, 999)}",
]

def luhn_ok(n):
    s = 0
    for i, x in enumerate(reversed([int(c) for c in n])):
        if i % 2 == 1:
            x *= 2
            if x > 9: x -= 9
        s += x
    return s % 10 == 0

def clean_corpus():
    lines = []
    for _ in range(120):
        doc, looks = base_doc(R.choice(["catalog-api", "orders", "search"])), []
        for _ in range(R.randint(4, 8)):
            v = R.choice(LOOKALIKES)()
            looks.append(v)
            field = R.choice(["annotations", "metadata", "cause.exceptions.message", "aws", "sql.sanitized_query", "http.request.user_agent", "subsegment"])
            if field in ("sql.sanitized_query",) and "sql" in doc: field = "metadata"
            plant(doc, "lookalike", v, field)
        lines.append({"doc": doc, "lookalikes": looks})
    return lines

def write(name, lines):
    with open(os.path.join(HERE, name), "w") as f:
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")

write("pii.jsonl", pii_corpus())
write("clean.jsonl", clean_corpus())
