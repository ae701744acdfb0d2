#!/usr/bin/env python3
"""Generates the scrubber's labeled corpus (deterministic: fixed seed).

pii.jsonl:   segment documents with planted PII; each line {"doc": ..., "planted": [{"kind", "value", "field"}]}
             where `value` is the sensitive text that must not survive scrubbing.
clean.jsonl: documents full of look-alikes (order numbers, UUIDs, hex ids, versions, prices,
             Luhn-invalid digit runs, timestamps...); {"doc": ..., "lookalikes": [...]} must all survive.

The lines after the first ones (a second seeded generator) hold the forms added for issue #13:
percent-encoded values and form bodies, JSON bodies with \\u escapes, PII as map keys, in arrays
of strings and as a string `cause`, secrets named in Korean and other languages, Python and
Ruby dicts, YAML-ish and ini text printed into logs, and documents shaped like the official
SDKs' (Python, Node, Java, .NET with its four-part versions, Go); and clean look-alikes of them
(user agents, assembly versions, Korean sentences about tokens, encoded clean queries).

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

# ---- forms the first corpus lacked: encoded, escaped, keyed, other languages, logged text ----
# A second generator, so the lines above stay as they were.
R2 = random.Random(20261205)

def pct(text, keep=string.ascii_letters + string.digits):
    return "".join(c if c in keep else "".join(f"%{b:02X}" for b in c.encode()) for c in text)

def uesc(text):
    return "".join(c if c.isalnum() and c.isascii() else "".join(f"\\u{u:04x}" for u in [ord(c)]) for c in text)

def with_r2(gen):
    """Runs a kind's generator with the second generator's randomness."""
    global R
    saved, R = R, R2
    try:
        return gen()
    finally:
        R = saved

def pw(n=None): return alnum(n or R2.randint(8, 16), string.ascii_letters + string.digits + "!#%*")

def new_forms():
    """(kind, text as written, value that must not survive, where) for the new forms."""
    email_v = with_r2(email)[0]
    card_v = with_r2(card)[0]
    phone_v = with_r2(phone)[0]
    ssn_v = with_r2(ssn)[0]
    ip_v = with_r2(ipv4)[0]
    rrn_v = with_r2(kr_rrn)[0]
    akey = with_r2(aws_access_key)[0]
    secret_v = pw()
    tok = alnum(24, string.ascii_letters + string.digits) + "7"
    forms = [
        # Percent-encoded values in URLs and form bodies.
        ("email", f"https://shop.example.com/api/find?email={pct(email_v)}&page=2", pct(email_v), "http.request.url"),
        ("phone", f"/api/sms?to={pct(phone_v)}&lang=ko", pct(phone_v), "http.request.url"),
        ("card", f"q={pct(card_v)}&x=1", pct(card_v), "metadata"),
        ("email", f"email={pct(email_v)}&password={pct(secret_v)}&remember=on", pct(email_v), "form_body"),
        ("secret", f"username=bob&password={pct(secret_v)}&remember=on", pct(secret_v), "form_body"),
        ("card", "card=" + card_v.replace(" ", "+").replace("-", "+") + "&exp=12%2F29", card_v.replace(" ", "+").replace("-", "+"), "form_body"),
        # JSON bodies logged as strings, with \u escapes.
        ("email", "{\"email\":\"" + uesc(email_v) + "\"}", uesc(email_v), "metadata"),
        ("phone", "{\"phone\":\"" + uesc(phone_v) + "\"}", uesc(phone_v), "cause.exceptions.message"),
        # Map keys, arrays of strings, string causes.
        ("email", email_v, email_v, "metadata_key"),
        ("card", card_v, card_v, "metadata_key"),
        ("ssn", ssn_v, ssn_v, "string_array"),
        ("ipv4", ip_v, ip_v, "string_array"),
        ("email", f"lookup failed for {email_v}", email_v, "cause_string"),
        # Secrets named in Korean (and other languages) and logged text forms.
        ("secret", f"비밀번호: {secret_v}", secret_v, "cause.exceptions.message"),
        ("secret", f"암호={secret_v}", secret_v, "metadata"),
        ("secret", f"토큰 {tok}", tok, "annotations"),
        ("secret", f"로그인 실패 (비밀번호는 {secret_v}9 입니다)", secret_v + "9", "cause.exceptions.message"),
        ("secret", f"パスワード：{secret_v}", secret_v, "metadata"),
        ("secret", f"credentials: {{'AccessKeyId': '{akey}', 'SecretAccessKey': '{secret_v}', 'SessionToken': '{tok}'}}", secret_v, "metadata"),
        ("aws_access_key", f"boto3 creds {{'AccessKeyId': '{akey}', 'Expiration': '2026-12-05'}}", akey, "cause.exceptions.message"),
        ("secret", f"{{:password=>\"{secret_v}\", :user=>\"bob\"}}", secret_v, "metadata"),
        ("secret", f"db:\n  host: db.internal\n  password: {secret_v} {secret_v[::-1]}\n  port: 5432", secret_v[::-1], "metadata"),
        ("secret", f"[database]\nhost = db.internal\npassword = {secret_v} {secret_v[::-1]}\nport = 5432", secret_v[::-1], "metadata"),
        # Forms the detectors were not written for, from real logs.
        ("email", f"주문 확인 메일을 {email_v}으로 보냈습니다", email_v, "cause.exceptions.message"),
        ("kr_rrn", f"주민번호: {rrn_v}", rrn_v, "annotations"),
        ("email", f"mailto:{email_v.upper()}", email_v.upper(), "metadata"),
        ("ipv4", f"X-Forwarded-For: {ip_v}, 10.0.0.1", ip_v, "http.request.user_agent"),
        ("card", f"카드번호 {card_v} 승인 거절", card_v, "cause.exceptions.message"),
    ]
    return forms

def plant_new(doc, kind, text, where):
    slot = {"form_body": "body", "http.request.url": "url", "http.request.user_agent": "user_agent"}.get(where)
    request = doc.get("http", {}).get("request", {})
    if slot in request and not (slot == "url" and request["url"] == "https://shop.example.com/api/checkout"):
        return plant_new(doc, kind, text, "metadata")
    if where == "form_body":
        doc.setdefault("http", {}).setdefault("request", {})["body"] = text
        return "http.request.body"
    if where == "metadata_key":
        doc.setdefault("metadata", {}).setdefault("visits", {})[text] = R2.randint(1, 9)
        return "metadata.key"
    if where == "string_array":
        doc.setdefault("metadata", {}).setdefault("app", {})["tags"] = ["vip", text, "beta"]
        return "metadata.array"
    if where == "cause_string":
        if "cause" in doc:
            return plant_new(doc, kind, text, "metadata")
        doc["cause"] = text
        return "cause"
    if where == "metadata":
        doc.setdefault("metadata", {}).setdefault("log", {})[f"line{R2.randint(0, 10**6)}"] = text
        return "metadata"
    if where == "annotations":
        doc.setdefault("annotations", {})[f"note_{len(doc.get('annotations', {}))}"] = text
        return "annotations"
    if where == "http.request.url":
        doc.setdefault("http", {}).setdefault("request", {})["url"] = text
        return where
    if where == "http.request.user_agent":
        doc.setdefault("http", {}).setdefault("request", {})["user_agent"] = text
        return where
    if where == "cause.exceptions.message":
        if isinstance(doc.get("cause"), str):
            return plant_new(doc, kind, text, "metadata")
        doc.setdefault("cause", {"working_directory": "/srv/app", "exceptions": []})["exceptions"].append(
            {"id": hexid(16), "message": text, "type": "LoginError", "stack": [{"path": "/srv/app/app.py", "line": R2.randint(1, 400), "label": "login"}]})
        return where
    raise ValueError(where)

def sdk_doc():
    """A document shaped like the official SDKs' (the captures in tests/data/captures)."""
    sdk = R2.choice([("X-Ray for Python", "2.15.0", "CPython", "3.11.7"), ("X-Ray for Node.js", "3.12.0", "node", "v20.20.2"),
                     ("X-Ray for Java", "2.18.1", "OpenJDK 64-Bit Server VM", "21.0.2"), ("X-Ray for .NET Core", "2.14.0.0", "dotnet", "8.0.4"),
                     ("X-Ray for Go", "1.8.3", "go", "go1.22.2")])
    doc = base_doc(R2.choice(["checkout-api", "login-api", "orders"]))
    doc["aws"] = {"xray": {"sdk": sdk[0], "sdk_version": sdk[1]}}
    doc["service"] = {"runtime": sdk[2], "runtime_version": sdk[3]}
    return doc

def new_pii_lines():
    lines = []
    for _ in range(4):
        forms = new_forms()
        R2.shuffle(forms)
        i = 0
        while i < len(forms):
            doc, planted = sdk_doc(), []
            for kind, text, value, where in forms[i:i + R2.randint(2, 5)]:
                field = plant_new(doc, kind, text, where)
                planted.append({"kind": kind, "value": value, "field": field})
                i += 1
            lines.append({"doc": doc, "planted": planted})
    return lines

NEW_LOOKALIKES = [
    lambda: f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{R2.randint(110, 130)}.0.0.0 Safari/537.36",
    lambda: f"Chrome/{R2.randint(110, 130)}.0.{R2.randint(1000, 6999)}.{R2.randint(10, 250)}",
    lambda: f"Newtonsoft.Json, Version={R2.randint(9, 13)}.0.0.0, Culture=neutral, PublicKeyToken=30ad4fe6b2a6aeed",
    lambda: f"System.Private.CoreLib, Version={R2.randint(6, 8)}.0.0.0",
    lambda: f"app_version={R2.randint(1, 20)}.{R2.randint(0, 9)}.{R2.randint(0, 9)}.{R2.randint(0, 200)}",
    lambda: f"version: {R2.randint(1, 20)}.{R2.randint(0, 9)}.{R2.randint(0, 9)}.{R2.randint(0, 200)}",
    lambda: "토큰 만료", lambda: "토큰이 만료되었습니다", lambda: "암호화 완료", lambda: "비밀번호 변경 안내 메일 발송",
    lambda: "Passwort vergessen", lambda: "credentials: {",
    lambda: f"q=red%20shoes&size={R2.randint(220, 290)}&page={R2.randint(1, 9)}", lambda: f"path%2Fto%2F{word(5)}.png",
    lambda: "caf\\u00e9 \\u2603", lambda: f"{R2.randint(1, 99)}% off", lambda: "a+b=c",
    lambda: f"{{'status': 'ok', 'count': {R2.randint(1, 99)}, 'token_type': 'bearer'}}",
    lambda: f"retries: {R2.randint(1, 5)}\ntimeout: {R2.randint(1, 60)}s", lambda: f"[server]\nport = {R2.randint(1024, 9999)}\nworkers = 4",
    lambda: f"https://sqs.us-east-1.amazonaws.com/{R2.randint(10**11, 10**12 - 1)}/orders",
    lambda: f"{{:status=>\"ok\", :items=>{R2.randint(1, 9)}}}", lambda: "[email] placeholder in docs",
    lambda: f"password_changed_at={R2.randint(1700000000, 1800000000)}",
]

def new_clean_lines():
    lines = []
    for _ in range(40):
        doc, looks = sdk_doc(), []
        if doc["aws"]["xray"]["sdk_version"].count(".") == 3:
            looks.append(doc["aws"]["xray"]["sdk_version"])
        for _ in range(R2.randint(3, 6)):
            v = R2.choice(NEW_LOOKALIKES)()
            looks.append(v)
            field = R2.choice(["annotations", "metadata", "cause.exceptions.message", "http.request.user_agent"])
            plant_new(doc, "lookalike", v, field)
        lines.append({"doc": doc, "lookalikes": looks})
    return lines

def write(name, lines):
    with open(os.path.join(HERE, name), "w") as f:
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")

PII_LINES, CLEAN_LINES = pii_corpus(), clean_corpus()
write("pii.jsonl", PII_LINES + new_pii_lines())
write("clean.jsonl", CLEAN_LINES + new_clean_lines())
