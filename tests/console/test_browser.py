"""The console in a real headless browser: Debian's chromium driven by Selenium 4 through Debian's
chromium-driver (pinned to the browser by the package manager; nothing is downloaded at test time).

The hub runs for real (uvicorn in a thread, ``tests.live.HubServer``: HTTP, static files, the websocket).
Screenshots go to ``test-artifacts/console/`` (kept by CI as artifacts; two are in the README).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from django.conf import settings

from modelhub import realtime
from tests.conftest import ROLES
from tests.factories import PASSWORD, DeploymentFactory
from tests.live import HubServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "console"

pytestmark = [
    pytest.mark.slow,
    # Skipped on a developer's machine without them; under CI (which installs them) a missing browser fails.
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
    ),
]


@pytest.fixture(scope="module")
def console_server():
    server = HubServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()


@pytest.fixture
def site(transactional_db, personas, console_server, driver):
    """Sign ``driver`` in as a persona through the login form; ``site.go(path)`` opens a page."""
    from selenium.webdriver.common.by import By

    class Site:
        url = console_server.url

        def login(self, role: str) -> None:
            driver.delete_all_cookies()
            driver.get(self.url + "/login")
            driver.find_element(By.ID, "id_username").send_keys(role)
            driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait_for(lambda: "/login" not in driver.current_url, "signed in")

        def go(self, path: str) -> None:
            driver.get(self.url + path)

        def shot(self, name: str) -> Path:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            path = ARTIFACTS / f"{name}.png"
            driver.save_screenshot(str(path))
            return path

    return Site()


def wait_for(condition, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # an element not there yet, a stale one: try again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.1)


def live(driver) -> bool:
    return driver.find_element("id", "live").get_attribute("data-state") == "up"


def test_login_and_the_live_dashboard(site, driver, model):
    from selenium.webdriver.common.by import By

    site.login("analyst")
    assert driver.current_url.endswith("/console/")
    wait_for(lambda: live(driver), "the websocket authenticated (live badge)")
    # A live event published through the realtime publish function changes the page, no reload.
    marker = driver.execute_script("window.__marker = 1; return window.__marker;")
    payload = {
        "summary": {
            "totalModels": 7,
            "activeDeployments": 3,
            "totalRequests": 4242,
            "totalCost": 12.5,
            "avgLatency": 321.0,
            "avgRating": 4.5,
            "errorRate": 0.0125,
            "p95Latency": 900.0,
        },
        "topModels": [{"modelId": str(model.pk), "name": "gpt-test", "requests": 4242, "cost": 12.5, "rating": 4.5}],
        "recentActivity": [],
        "alerts": [],
        "trends": [
            {
                "timestamp": f"2026-12-01T{h:02d}:00:00Z",
                "requests": 100 + h * 10,
                "errors": h % 3,
                "cost": 0.1 * h,
                "latencyP50": 100.0,
                "latencyP95": 200.0 + h,
                "latencyP99": 300.0 + h,
            }
            for h in range(24)
        ],
    }
    realtime.send_now("dashboard:update", payload)
    cell = driver.find_element(By.CSS_SELECTOR, '[data-summary="totalRequests"]')
    wait_for(lambda: cell.text == "4242", "the dashboard card changed from the event")
    assert driver.find_element(By.CSS_SELECTOR, '[data-summary="errorRate"]').text == "1.25%"
    assert driver.execute_script("return window.__marker;") == marker  # same page: not reloaded
    # The charts drew (a canvas with painted pixels).
    painted = """
        const canvas = document.querySelector('#chart-requests canvas');
        if (!canvas) return false;
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) return true;
        return false;
    """
    wait_for(lambda: driver.execute_script(painted), "a non-blank chart canvas")
    site.shot("dashboard")


@pytest.mark.parametrize("role", ROLES)
def test_each_page_renders_for_each_role_and_refuses_where_it_must(site, driver, model, role):
    from selenium.webdriver.common.by import By

    site.login(role)
    for path, permission in (
        ("/console/", "analytics.read"),
        ("/console/models", "models.read"),
        (f"/console/models/{model.pk}", "models.read"),
        ("/console/deployments", "deployments.read"),
        ("/console/experiments", "experiments.read"),
        ("/console/costs", "costs.read"),
        ("/console/marketplace", "marketplace.read"),
        ("/console/alerts", "analytics.read"),
    ):
        site.go(path)
        errors = driver.find_elements(By.CSS_SELECTOR, "main .error")
        from modelhub.roles import has_permission

        if has_permission(role, permission):
            assert not errors, (role, path, errors[0].text if errors else "")
        else:
            assert errors and "FORBIDDEN" in errors[0].text and "request id" in errors[0].text, (role, path)
        assert driver.find_element(By.CSS_SELECTOR, "header .badge").text == role


def test_scale_through_the_ui(site, driver, personas, model):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deployment = DeploymentFactory(model=model, status="running", owner=personas["developer"])
    site.login("developer")
    site.go("/console/deployments")
    row = f'tr[data-deployment-id="{deployment.pk}"]'
    field = driver.find_element(By.CSS_SELECTOR, f"{row} input[name=replicas]")
    field.clear()
    field.send_keys("3")
    drawn = driver.find_element(By.CSS_SELECTOR, row)
    driver.find_element(By.CSS_SELECTOR, f"{row} button[type=submit]").click()

    def swapped():
        # The row is replaced by the one drawn from the API's answer (the old element goes stale);
        # the status was "running" before the click too, so the text alone proves nothing.
        try:
            drawn.is_enabled()  # any call on a replaced element raises
            return False
        except StaleElementReferenceException:
            return True

    wait_for(swapped, "the row drawn from the scale answer")
    assert driver.find_element(By.CSS_SELECTOR, f'{row} [data-field="status"]').text in ("scaling", "running")
    assert not driver.find_elements(By.CSS_SELECTOR, f"{row} .error")
    deployment.refresh_from_db()
    assert deployment.target_replicas == 3 or deployment.replicas == 3
    site.shot("deployments")


def test_readable_at_phone_width(site, driver, model):
    site.login("manager")
    driver.set_window_size(390, 844)
    try:
        site.go("/console/models")
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth;")
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px at phone width"
        site.shot("models-phone")
    finally:
        driver.set_window_size(1280, 900)


def test_purchase_through_the_ui_with_a_double_click(site, driver, personas):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from marketplace.models import Entitlement, Purchase
    from tests.marketplace.helpers import make_listing

    listing, plan, _ = make_listing(personas["admin"], name="ui-market-model")
    site.login("developer")
    site.go("/console/marketplace")
    wait_for(lambda: "ui-market-model" in driver.page_source, "the listing in the marketplace")
    site.go(f"/console/marketplace/{listing.model_id}")
    form = driver.find_element(By.CSS_SELECTOR, "form.purchase")
    form.find_element(By.CSS_SELECTOR, "input[name=accept]").click()
    button = form.find_element(By.CSS_SELECTOR, "button[type=submit]")
    ActionChains(driver).double_click(button).perform()
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, '[data-entitlement-status="active"]'), "the purchase answer")
    site.shot("marketplace")
    assert Purchase.objects.filter(plan=plan).count() == 1 and Entitlement.objects.count() == 1


def test_an_api_refusal_is_shown_where_the_action_was(site, driver, personas):
    """The price changed after the page was drawn: the API's 409 (naming the current price) shows in the plan."""
    from decimal import Decimal

    from selenium.webdriver.common.by import By

    from marketplace import services
    from marketplace.models import Purchase
    from tests.marketplace.helpers import make_listing

    listing, plan, _ = make_listing(personas["admin"], name="repriced-model")
    site.login("developer")
    site.go(f"/console/marketplace/{listing.model_id}")
    services.plan_create(
        listing=listing,
        actor=personas["admin"],
        name="one_time",
        pricing_model="one_time",
        amount=Decimal("25.00"),
        currency="USD",
        replaces_plan_id=plan.pk,
    )
    form = driver.find_element(By.CSS_SELECTOR, "form.purchase")
    form.find_element(By.CSS_SELECTOR, "input[name=accept]").click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, f"#purchase-{plan.pk} .error"), "the refusal")
    assert "request id" in error[0].text
    assert not Purchase.objects.exists()
