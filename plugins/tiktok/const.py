"""Constants of the TikTok destination (TikTok's Events API 2.0; each rule's source is on
docs/destinations/tiktok.md)."""

from __future__ import annotations

PLUGIN_NAME = "tiktok"
DEFAULT_BASE_URL = "https://business-api.tiktok.com/open_api/v1.3"
TRACK_PATH = "/event/track/"

#: the most events one request carries
MAX_EVENTS = 1000
#: what the plugin puts in one request unless the operator's delivery.batch_size says more
DEFAULT_BATCH = 100

#: where the events come from, and what event_source_id then is
EVENT_SOURCES = ("web", "app", "offline", "crm")

#: TikTok's standard events (May 2025 names), and the older names it still takes
STANDARD_EVENTS = frozenset({
    "AddPaymentInfo", "AddToCart", "AddToWishlist", "ApplicationApproval",
    "CompleteRegistration", "Contact", "CustomizeProduct", "Download", "FindLocation",
    "InitiateCheckout", "Lead", "Purchase", "Schedule", "Search", "StartTrial",
    "SubmitApplication", "Subscribe", "ViewContent"})
LEGACY_EVENTS = frozenset({"CompletePayment", "SubmitForm", "PlaceAnOrder", "ClickButton"})
#: reserved names TikTok maps to a standard event itself (not custom events)
RESERVED_EVENTS = {
    "AddBilling": "AddPaymentInfo", "Browse": "PageView", "Checkout": "PlaceAnOrder",
    "ClickForm": "SubmitForm", "ClickInDownloadPage": "ClickButton",
    "ClickToDownload": "Download", "Consult": "Contact", "ConsultByPhone": "Contact",
    "Registration": "CompleteRegistration", "StartCheckout": "InitiateCheckout",
    "ViewConsultationPage": "ViewContent", "ViewDownloadPage": "ViewContent",
    "ViewForm": "ViewContent"}

#: response codes (HTTP 200 carries them all)
OK = 0
PARTIAL_OK = 20001
NO_PERMISSION = 40001
INVALID_PARAMETER = 40002
RATE_LIMITED = 40100
#: the access token is missing, expired or invalid
TOKEN_CODES = frozenset({40102, 40104, 40105})
#: seconds to wait after a 40100 ("Too many requests. Please retry in some time.")
THROTTLE_PAUSE = 1.0

#: user fields TikTok takes hashed (SHA-256, lower hex) once normalized
HASHED_FIELDS = ("email", "phone", "external_id")
