"""Regenerates tests/fixtures/minilm_tokens.json: token ids and attention masks from Python's `tokenizers`
package for 200+ strings, with all-MiniLM-L6-v2's tokenizer.json (scripts/fetch-models.sh puts it in
cache/). The Rust test tests/tokenize.rs must reproduce them exactly.

Usage: python tests/python/tokenizer_golden.py [tokenizer.json] [out.json]
"""
import json
import random
import sys

import tokenizers
from tokenizers import Tokenizer

MAX_LEN = 128

ADJ = ["Classic", "Organic", "Compact", "Deluxe", "Wireless", "Vintage", "Stainless-Steel", "Kids'", "Men's",
       "Women's", "Eco-friendly", "Heavy Duty", "Non-Stick", "USB-C", "4K", "Waterproof", "Cordless"]
NOUN = ["Kettle", "Headphones", "Running Shoes", "Yoga Mat", "Backpack", "Coffee Grinder", "Desk Lamp",
        "Phone Case", "Cast Iron Skillet", "Bluetooth Speaker", "Rain Jacket", "Board Game", "Air Fryer"]
EXTRA = ["(2-Pack)", "- 500ml", "| Free Shipping", "w/ Charger", "Size 10.5", "XL", "#1 Best Seller",
         "100% Cotton", "$19.99", "v2.0", "&amp; more", "[Renewed]"]
QUERIES = ["cheap headphones", "running shoes for women", "gift for dad under $50", "usb c charger 65w",
           "best coffee grinder 2026", "waterproof hiking boots size 11", "lego star wars", "organic green tea",
           "iphone 15 case", "non-toxic cookware", "ergonomic office chair", "kids bike 16 inch",
           "wireless earbuds noise cancelling", "air fryer xl", "yoga mat thick", "how to clean cast iron"]
CHINESE = ["无线蓝牙耳机", "男士运动鞋 透气", "不锈钢保温杯 500毫升", "儿童益智玩具", "有机绿茶 礼盒装",
           "笔记本电脑支架", "女式羽绒服 冬季", "咖啡研磨机 手动", "防水登山包 40升", "智能手表 心率监测",
           "厨房 刀具套装", "猫砂 除臭", "手机壳 iPhone 15", "电动牙刷 充电式", "婴儿 推车"]
ACCENTS_EMOJI = ["Crème brûlée torch 🔥", "Café au lait mug ☕", "Piñata 🎉 party pack", "Jalapeño hot sauce 🌶️",
                 "Naïve art print", "Über-soft blanket", "Smörgåsbord plate set", "Façade lamp",
                 "Ærø wool socks", "São Paulo city map", "Zürich chocolate 🍫", "Fjällräven-style backpack 🎒",
                 "👟👟 sneakers 👟", "🐶 dog toy 🦴", "Ĉu vi parolas?", "Résumé template ✍️", "Ελληνικό μέλι",
                 "Чайник электрический", "Ṭhe wëird tëxt", "emoji only 😀😃😄😁", "👨‍👩‍👧‍👦 family pack",
                 "flag 🇯🇵 souvenir", "skin tone 👍🏽", "math ∑ √ ∞ mug"]
EDGE = ["", " ", "   ", "\t", "\n", " \t\n ", "a", "A", "?", "...", "!!!", "$", "123", "3.14", "--", "a-b-c",
        "UPPERCASE TITLE", "MiXeD cAsE", "don't won't can't", "e-mail@example.com", "https://shop.example/item?id=42",
        "<b>bold</b> title", "tab\tseparated\tvalues", "line\nbreak", "  leading and trailing  ",
        "multiple     spaces", "unicode\u00a0nbsp", "zero\u200bwidth", "[CLS] literal", "[SEP] [PAD] [MASK]"]


def long_strings(rng):
    out = []
    for n in [60, 127, 128, 129, 200, 400]:
        out.append(" ".join(rng.choice(ADJ + NOUN) for _ in range(n)))
    out.append("x" * 5000)
    out.append("无" * 300)
    out.append(("Supercalifragilisticexpialidocious " * 40).strip())
    out.append("🎉" * 200)
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "cache/models/all-MiniLM-L6-v2/tokenizer.json"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/minilm_tokens.json"
    rng = random.Random(7)
    strings = []
    for _ in range(100):
        t = f"{rng.choice(ADJ)} {rng.choice(NOUN)}"
        if rng.random() < 0.6:
            t += " " + rng.choice(EXTRA)
        strings.append(t)
    strings += QUERIES + [q.upper() for q in QUERIES[:6]]
    strings += CHINESE + [c + " " + rng.choice(NOUN) for c in CHINESE[:5]]
    strings += ACCENTS_EMOJI + EDGE + long_strings(rng)

    tok = Tokenizer.from_file(path)
    pad = tok.padding or {}
    tok.enable_truncation(MAX_LEN)
    tok.enable_padding(pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"))
    enc = tok.encode_batch(strings)
    golden = {
        "source": f"Python tokenizers {tokenizers.__version__}, all-MiniLM-L6-v2 tokenizer.json, "
                  f"truncation {MAX_LEN}, padding to the longest in the batch",
        "max_len": MAX_LEN,
        "strings": strings,
        "ids": [e.ids for e in enc],
        "attention_mask": [e.attention_mask for e in enc],
        "type_ids": [e.type_ids for e in enc],
    }
    with open(out, "w") as f:
        json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
    print(f"wrote {len(strings)} strings to {out}")


if __name__ == "__main__":
    main()
