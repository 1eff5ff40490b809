"""What the demo shop sells and says: a product catalogue and message copy per channel.

The shop is fictional ("Juniper & Co", shop.example.com); so are all its people.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.demo import EMAIL, IN_APP, PUSH, SMS

SHOP = "Juniper & Co"
SHOP_URL = "https://shop.example.com"


@dataclass(frozen=True)
class Product:
    product_id: str
    sku: str
    name: str
    category: str
    price: float

    def as_item(self, quantity: int = 1) -> dict:
        return {
            "product_id": self.product_id,
            "sku": self.sku,
            "name": self.name,
            "category": self.category,
            "price": self.price,
            "quantity": quantity,
            "url": f"{SHOP_URL}/p/{self.product_id}",
        }


def _p(sku: str, name: str, category: str, price: float) -> Product:
    return Product(f"prod_{sku.lower().replace('-', '')}", sku, name, category, price)


LAUNCH_DRESS = _p("DR-2801", "Silk Wrap Midi Dress", "Dresses", 280.0)
CATALOG: tuple[Product, ...] = (
    LAUNCH_DRESS,
    _p("DR-1190", "Linen Shirt Dress", "Dresses", 119.0),
    _p("DR-1640", "Pleated Satin Slip Dress", "Dresses", 164.0),
    _p("DR-0890", "Jersey T-Shirt Dress", "Dresses", 89.0),
    _p("TP-0450", "Organic Cotton Tee", "Tops", 45.0),
    _p("TP-0780", "Poplin Oversized Shirt", "Tops", 78.0),
    _p("TP-0950", "Cashmere Crew Jumper", "Knitwear", 195.0),
    _p("TP-0690", "Ribbed Merino Cardigan", "Knitwear", 129.0),
    _p("BT-0980", "High-Rise Straight Jeans", "Denim", 98.0),
    _p("BT-1150", "Wide-Leg Wool Trousers", "Trousers", 115.0),
    _p("BT-0720", "Pleated Midi Skirt", "Skirts", 72.0),
    _p("OW-2990", "Double-Faced Wool Coat", "Outerwear", 299.0),
    _p("OW-1850", "Cropped Trench Jacket", "Outerwear", 185.0),
    _p("SH-1350", "Leather Ankle Boots", "Shoes", 135.0),
    _p("SH-0890", "Canvas Court Sneakers", "Shoes", 89.0),
    _p("SH-1120", "Block-Heel Slingbacks", "Shoes", 112.0),
    _p("AC-0450", "Gold Hoop Earrings", "Accessories", 45.0),
    _p("AC-0900", "Leather Crossbody Bag", "Accessories", 90.0),
    _p("AC-0350", "Silk Hair Scarf", "Accessories", 35.0),
    _p("AC-0650", "Woven Leather Belt", "Accessories", 65.0),
)

# Marketing copy: (template name, content). ``{first_name}`` is the only placeholder.
MARKETING: dict[str, tuple[tuple[str, dict], ...]] = {
    EMAIL: (
        ("weekly-edit", {"subject": "{first_name}, your weekly edit is here", "preheader": "Twelve new pieces we think you'll love", "body": "Hi {first_name}, this week's edit: soft tailoring, silk and the season's best knitwear."}),
        ("styling-tips", {"subject": "Five ways to wear one slip dress", "preheader": "From desk to dinner", "body": "Hi {first_name}, our stylists put together five looks around one dress."}),
        ("flash-sale", {"subject": "48 hours only: 20% off knitwear", "preheader": "Ends Sunday at midnight", "body": "Hi {first_name}, our cashmere and merino are 20% off until Sunday."}),
        ("new-arrivals", {"subject": "Just landed: linen & silk", "preheader": "The new season, first look", "body": "Hi {first_name}, the new arrivals are in: linen, silk and easy layers."}),
        ("loyalty-points", {"subject": "{first_name}, you have points waiting", "preheader": "Redeem them on anything", "body": "Hi {first_name}, your loyalty points are ready to use on your next order."}),
    ),
    SMS: (
        ("flash-sale-sms", {"body": SHOP + ": {first_name}, 20% off dresses until midnight. " + SHOP_URL + "/s/fl20 Reply STOP to opt out"}),
        ("new-arrivals-sms", {"body": SHOP + ": new season just landed, {first_name}. First look: " + SHOP_URL + "/s/new Reply STOP to opt out"}),
        ("stylist-pick-sms", {"body": SHOP + ": our stylist picked 3 pieces for you, {first_name}: " + SHOP_URL + "/s/pick Reply STOP to opt out"}),
    ),
    PUSH: (
        ("back-in-stock-push", {"title": "Back in stock", "body": "The pieces you loved are back, {first_name}. Sizes are going fast."}),
        ("flash-sale-push", {"title": "20% off, tonight only", "body": "Dresses and knitwear, until midnight."}),
        ("styled-for-you-push", {"title": "Styled for you", "body": "{first_name}, three new looks picked by our stylists."}),
    ),
    IN_APP: (
        ("loyalty-banner", {"title": "You're close to Gold", "body": "Two more orders unlock free express delivery.", "cta": "See my rewards"}),
        ("new-season-card", {"title": "The new season is here", "body": "Explore linen, silk and soft tailoring.", "cta": "Shop new in"}),
        ("style-quiz", {"title": "Find your fit", "body": "Take our 60-second style quiz for better picks.", "cta": "Start the quiz"}),
    ),
}

# Styling advice rather than discounts (the launch-story customer responds to these).
STYLING = frozenset({"styling-tips", "stylist-pick-sms", "styled-for-you-push", "style-quiz"})


def render(content: dict, first_name: str, url: str) -> dict:
    rendered = {key: value.replace("{first_name}", first_name) for key, value in content.items()}
    rendered["url"] = url
    return rendered


def cart_reminder(channel: str, first_name: str, product: Product) -> dict:
    url = f"{SHOP_URL}/cart?utm_source=chorus&utm_medium={channel}&utm_campaign=cart-reminder"
    if channel == EMAIL:
        return {"subject": f"{first_name}, you left something behind", "preheader": product.name, "body": f"Your {product.name} is still in your bag.", "url": url}
    if channel == SMS:
        return {"body": f"{SHOP}: your {product.name} is still in your bag, {first_name}. {SHOP_URL}/s/bag Reply STOP to opt out", "url": url}
    return {"title": "Still thinking it over?", "body": f"Your {product.name} is waiting in your bag.", "url": url}


def order_confirmation(first_name: str, order_id: str, total: float) -> dict:
    return {
        "subject": f"Order {order_id} confirmed",
        "preheader": f"Thanks, {first_name}! Total ${total:,.2f}",
        "body": f"Hi {first_name}, we've received your order {order_id} (${total:,.2f}). We'll let you know when it ships.",
        "url": f"{SHOP_URL}/orders/{order_id}",
    }


def shipping_notice(channel: str, first_name: str, order_id: str) -> dict:
    url = f"{SHOP_URL}/orders/{order_id}/track"
    if channel == SMS:
        return {"body": f"{SHOP}: order {order_id} is on its way, {first_name}. Track: {url}", "url": url}
    if channel == EMAIL:
        return {"subject": f"Order {order_id} has shipped", "body": f"Good news, {first_name}: it's on its way.", "url": url}
    return {"title": "Your order has shipped", "body": f"Order {order_id} is on its way.", "url": url}
