"""Column names shared by every transform; functions take them as keyword defaults."""

EVENT_ID = "event_id"
USER_ID = "user_id"  # raw id: bronze only
USER_KEY = "user_key"  # pseudonymised id: silver and later
ITEM_ID = "item_id"
EVENT_TYPE = "event_type"
TIMESTAMP = "timestamp"  # raw string in bronze
EVENT_TIME = "event_time"  # parsed timestamp in silver
EVENT_DATE = "event_date"
SESSION_ID = "session_id"
QUANTITY = "quantity"
PRICE = "price"
TITLE = "title"
CATEGORY = "category"
AVAILABLE = "available"
BRAND = "brand"  # optional catalog column (generic items CSV, PUT /v1/items)
TERM = "term"  # gold.item_content_terms: a word of the content model
IDF = "idf"
WEIGHT = "weight"
ATTRIBUTES = "attributes"  # bronze.items: extra string attributes as JSON text (PUT /v1/items)
SOURCE_FORMAT = "source_format"
SOURCE_FILE = "source_file"
INGEST_DS = "ingest_ds"
INGESTED_AT = "ingested_at"
REASON = "reason"
DS = "ds"
STRENGTH = "strength"
N_EVENTS = "n_events"
N_USERS = "n_users"
LAST_EVENT_TIME = "last_event_time"
PURCHASED = "purchased"
RANK = "rank"
SCORE = "score"
KIND = "kind"
NEIGHBOUR_ID = "neighbour_id"
USER_IDX = "user_idx"
ITEM_IDX = "item_idx"

#: Kinds of item-item neighbour lists (gold neighbour tables and the Redis layout).
NEIGHBOUR_KINDS = ("co_view", "bought_together", "content")

#: Raw event fields of the generic format, in file order (all strings in bronze).
RAW_EVENT_FIELDS = (USER_ID, ITEM_ID, EVENT_TYPE, TIMESTAMP, SESSION_ID, QUANTITY, PRICE)
RAW_ITEM_FIELDS = (ITEM_ID, TITLE, CATEGORY, PRICE, AVAILABLE, BRAND, ATTRIBUTES)
ERASED_AT = "erased_at"  # erasure ledger: when the user was forgotten
ERASURE_SOURCE = "erasure_source"  # erasure ledger: cli | api

# Online experiments: silver.impressions (the API's logged lists) and gold.experiment_results.
RECOMMENDATION_ID = "recommendation_id"
SUBJECT = "subject"  # real-time subject: u:<user_key> or s:<hmac of the session id>
EXPERIMENT = "experiment"
VARIANT = "variant"
ENDPOINT = "endpoint"
POSITION = "position"
SOURCE = "source"
IMPRESSION_TIME = "impression_time"
ITEMS = "items"  # bronze.impressions: the shown list as JSON [{item_id, position, source}]
MODEL_VERSION = "model_version"
PUBLICATION = "publication"
#: Fields of an impression record in the event log (recolake.eventlog.Impression), and of
#: bronze.impressions (all strings as received).
RAW_IMPRESSION_FIELDS = (
    RECOMMENDATION_ID,
    USER_ID,
    SESSION_ID,
    EXPERIMENT,
    VARIANT,
    ENDPOINT,
    ITEMS,
    MODEL_VERSION,
    PUBLICATION,
    TIMESTAMP,
)
CONTROL_VARIANT = "control_variant"
IS_CONTROL = "is_control"
ATTRIBUTION_WINDOW_HOURS = "attribution_window_hours"
#: Counts per variant in gold.experiment_results (integers; revenue is the one sum of money).
EXPERIMENT_COUNTS = (
    "impressions",  # recommendation lists shown
    "items_shown",
    "clicks",  # credited views
    "carts",
    "purchases",
    "clicked_impressions",
    "converted_impressions",
)
REVENUE = "revenue"
#: Rates per variant; each has <rate>_low/_high (95% CI) and <rate>_diff/_p_value (vs control).
EXPERIMENT_RATES = ("ctr", "conversion", "revenue_per_impression")

# gold.user_profile (features/profile.py): the shop's view of one customer as of ds.
DAYS_SINCE_LAST_EVENT = "days_since_last_event"  # recency of any activity
LAST_PURCHASE_TIME = "last_purchase_time"
DAYS_SINCE_LAST_PURCHASE = "days_since_last_purchase"  # recency (RFM)
FREQUENCY = "frequency"  # distinct purchase baskets (RFM)
MONETARY = "monetary"  # sum of price x quantity of the purchases (RFM)
R_SCORE = "r_score"
F_SCORE = "f_score"
M_SCORE = "m_score"
SEGMENT = "segment"
TOP_CATEGORIES = "top_categories"
TOP_BRANDS = "top_brands"
SHARE = "share"
MEDIAN_PRICE = "median_price"
PRICE_BAND = "price_band"
PREFERRED_HOURS = "preferred_hours"
