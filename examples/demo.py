"""Prices of a few fruits. Select lines and pick "Run selection" (or use the CLI)."""

# %% Average price
prices = {"apple": 1.20, "pear": 0.95, "fig": 2.40}
round(sum(prices.values()) / len(prices), 2)


# %% Price ratios per basket
def ratios(basket: dict[str, float]) -> list[float]:
    cheapest = min(basket.values())
    return [round(price / cheapest, 2) for price in basket.values()]


for basket in ({"apple": 1.20, "fig": 2.40}, {"free sample": 0.0, "fig": 2.40}):
    if basket:
        print(ratios(basket))
