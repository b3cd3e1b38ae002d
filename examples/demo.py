"""A small analysis script: select lines and pick "Run selection" to see it run."""

import statistics

prices = {"apple": 1.20, "pear": 0.95, "fig": 2.40}


def average_price(basket: dict[str, float]) -> float:
    return sum(basket.values()) / len(basket)


def price_ratio(basket: dict[str, float], item: str, other: str) -> float:
    return basket[item] / basket[other]


# %% Summary
mean = average_price(prices)
print(f"{len(prices)} items, mean price {mean:.2f}")
statistics.median(prices.values())

# %% A bug further down: an empty basket
if __name__ == "__main__":
    for name in ("apple", "pear"):
        print(name, price_ratio(prices, name, "fig"))
    empty: dict[str, float] = {}
    print("average of nothing:", average_price(empty))
