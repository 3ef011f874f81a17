//! The Lua scripts that change the state in Redis, each atomic, and the names of the keys
//! they use. Keys of category C share the hash tag `{C}` (one Redis Cluster slot):
//!
//! ```text
//! <prefix>catalog          string  [{"name","prefix"}] in order: the categories
//! <prefix>{C}:totals       hash    product id -> total
//! <prefix>{C}:products     hash    product id -> {"name","rrp","info"}
//! <prefix>{C}:meta         hash    e: epoch (random, new when the state is seeded), s: sequence
//! <prefix>{C}:log          stream  <seq>-0: id, t (total)[, p (product)], trimmed to ~LOG_LENGTH
//! <prefix>{C}:rq:<request> string  "<total or id> <seq>": a change already applied (expires)
//! <prefix>{C}:ch           channel "<epoch>:<seq>:<id>:<total>[:<product>]"
//! ```
//!
//! A change bumps the sequence, appends to the log and publishes from inside its script, so
//! the order of messages is the order of sequences. A request id seen before returns what
//! it did the first time: a retry never counts twice. Errors are a code and words
//! (`UNKNOWN no such product`): Redis puts `ERR` before an error of one word. Totals travel
//! as decimal strings (`string.format('%d')`): Lua's own number formatting would round those
//! past 10^14.

/// How long a request id is remembered: longer than any retry.
pub const REQUEST_TTL_SECS: &str = "300";
/// About how many changes each category's log keeps, for filling gaps.
pub const LOG_LENGTH: &str = "10000";

/// The keys of one category.
#[derive(Debug, Clone)]
pub struct Keys {
    pub totals: String,
    pub products: String,
    pub meta: String,
    pub log: String,
    pub channel: String,
    /// The request-id keys start with this.
    pub request: String,
}

impl Keys {
    pub fn new(prefix: &str, category: &str) -> Keys {
        let base = format!("{prefix}{{{category}}}:");
        Keys {
            totals: format!("{base}totals"),
            products: format!("{base}products"),
            meta: format!("{base}meta"),
            log: format!("{base}log"),
            channel: format!("{base}ch"),
            request: format!("{base}rq:"),
        }
    }
}

/// The key that lists the categories.
pub fn catalog_key(prefix: &str) -> String {
    format!("{prefix}catalog")
}

/// Seeds the categories that Redis does not hold whole (no `meta`, or no `totals`), and the
/// catalog list unless one is there. What survives of such a category is kept (`HSETNX`);
/// what is missing comes from the data; it starts a new epoch with an empty log. KEYS: the
/// catalog key. ARGV: the catalog list (JSON), the epoch, then per category: its prefix
/// string (`<prefix>{C}:`), the number of products, then per product: id, fields (JSON),
/// total. Returns how many categories it seeded.
pub const SEED: &str = r#"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
local seeded = 0
local i = 3
while i <= #ARGV do
  local base, count = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local fresh = redis.call('EXISTS', base .. 'meta') == 0
    or redis.call('EXISTS', base .. 'totals') == 0
  if fresh then
    redis.call('DEL', base .. 'log')
    redis.call('HSET', base .. 'meta', 'e', ARGV[2], 's', 0)
    seeded = seeded + 1
  end
  for _ = 1, count do
    if fresh then
      redis.call('HSETNX', base .. 'products', ARGV[i], ARGV[i + 1])
      redis.call('HSETNX', base .. 'totals', ARGV[i], ARGV[i + 2])
    end
    i = i + 3
  end
end
return seeded
"#;

/// One category's state, atomically. KEYS: meta, totals, products. Returns
/// `{epoch, seq, {id, total, ...}, {id, fields, ...}}`; the epoch is empty when the
/// category is not in Redis (it was emptied).
pub const SNAPSHOT: &str = r#"
local m = redis.call('HMGET', KEYS[1], 'e', 's')
return {m[1] or '', m[2] or '0', redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3])}
"#;

/// An order. KEYS: totals, meta, log, request, products. ARGV: product id, amount, the largest
/// total, channel, log length, request TTL. Returns `{total, seq, epoch}`; errors
/// `UNKNOWN` (no such product), `RANGE <total>` (the total would leave 0..=max) and
/// `NOSTATE` (the category is not in Redis: it was emptied), state unchanged.
pub const ORDER: &str = r#"
local done = redis.call('GET', KEYS[4])
if done then
  local total, seq = string.match(done, '(%d+) (%d+)')
  return {tonumber(total), tonumber(seq), redis.call('HGET', KEYS[2], 'e') or ''}
end
local epoch = redis.call('HGET', KEYS[2], 'e')
local t = redis.call('HGET', KEYS[1], ARGV[1])
if not epoch then return redis.error_reply('NOSTATE the category is not in Redis') end
if not t then
  if redis.call('HEXISTS', KEYS[5], ARGV[1]) == 1 then
    return redis.error_reply('NOSTATE the totals are not in Redis')
  end
  return redis.error_reply('UNKNOWN no such product')
end
local n = tonumber(t) + tonumber(ARGV[2])
if n < 0 or n > tonumber(ARGV[3]) then return redis.error_reply('RANGE ' .. t) end
local total = string.format('%d', n)
local seq = string.format('%d', tonumber(redis.call('HGET', KEYS[2], 's') or '0') + 1)
-- The log first: the one write that can fail (an entry id not above the last) fails
-- before anything has changed.
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], seq .. '-0', 'id', ARGV[1], 't', total)
redis.call('HSET', KEYS[1], ARGV[1], total)
redis.call('HSET', KEYS[2], 's', seq)
redis.call('PUBLISH', ARGV[4], epoch .. ':' .. seq .. ':' .. ARGV[1] .. ':' .. total)
redis.call('SET', KEYS[4], total .. ' ' .. seq, 'EX', ARGV[6])
return {tonumber(total), tonumber(seq), epoch}
"#;

/// A new product. KEYS: products, totals, meta, log, request. ARGV: the id prefix, the
/// fields (JSON), the most products a category holds, channel, log length, request TTL.
/// Returns `{id, seq, epoch}`; errors `FULL`, `NOSTATE`.
pub const PRODUCT: &str = r#"
local done = redis.call('GET', KEYS[5])
if done then
  local id, seq = string.match(done, '(%S+) (%d+)')
  return {id, tonumber(seq), redis.call('HGET', KEYS[3], 'e') or ''}
end
local epoch = redis.call('HGET', KEYS[3], 'e')
if not epoch then return redis.error_reply('NOSTATE the category is not in Redis') end
local ids = redis.call('HKEYS', KEYS[1])
if #ids >= tonumber(ARGV[3]) then return redis.error_reply('FULL the category is full') end
local top = 0
for _, id in ipairs(ids) do
  local n = tonumber(string.sub(id, #ARGV[1] + 1))
  if n and n > top then top = n end
end
local id = ARGV[1] .. string.format('%d', top + 1)
local seq = string.format('%d', tonumber(redis.call('HGET', KEYS[3], 's') or '0') + 1)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], seq .. '-0', 'id', id, 't', 0, 'p', ARGV[2])
redis.call('HSET', KEYS[1], id, ARGV[2])
redis.call('HSET', KEYS[2], id, 0)
redis.call('HSET', KEYS[3], 's', seq)
redis.call('PUBLISH', ARGV[4], epoch .. ':' .. seq .. ':' .. id .. ':0:' .. ARGV[2])
redis.call('SET', KEYS[5], id .. ' ' .. seq, 'EX', ARGV[6])
return {id, tonumber(seq), epoch}
"#;
