"""Drives Horizon in headless Chromium as a member: network with a subnet,
a port, a router with a gateway and an interface, a floating IP, a security
group with a rule, the network topology; then deletes them all through the
tables' actions. Fails on any error message, error page or browser error.

Usage: horizon_drive.py HORIZON_URL USER PASSWORD SCREENSHOT_DIR
"""
import sys

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

base, user, password, shots = sys.argv[1:5]
step = "start"


def fail(message):
    name = f"{shots}/{step.replace(' ', '_')}.png"
    try:
        driver.save_screenshot(name)
    except Exception:  # noqa: BLE001 - the screenshot is a courtesy
        name = "(no screenshot)"
    sys.exit(f"FAIL [{step}]: {message} at {driver.current_url} ({name})")


def wait(condition, what, seconds=30):
    try:
        return WebDriverWait(driver, seconds).until(condition)
    except TimeoutException:
        fail(f"timed out waiting for {what}")


def page_errors():
    """Error messages, error pages and browser errors on the current page."""
    found = [e.text.strip() for e in driver.find_elements(
        By.CSS_SELECTOR, ".alert-danger, .alert-error, .has-error .help-block, .errorlist")
        if e.is_displayed()]
    title = driver.title
    if title.startswith(("Error", "Unauthorized", "Server error", "Page Not Found", "Forbidden")):
        found.append(f"page title '{title}'")
    for entry in driver.get_log("browser"):
        if entry["level"] == "SEVERE":
            found.append(entry["message"])
    return found


def check_page(what):
    errors = page_errors()
    if errors:
        fail(f"{what}: " + " | ".join(errors))


def open_page(path):
    driver.get(base + path)
    wait(lambda d: d.execute_script("return document.readyState") == "complete", f"{path} to load")
    check_page(f"opening {path}")


def show(element):
    """Makes a field of a tabbed workflow visible by opening its tab."""
    pane = driver.execute_script("return arguments[0].closest('.tab-pane')", element)
    if pane is not None and not pane.is_displayed():
        driver.find_element(By.CSS_SELECTOR, f"a[href='#{pane.get_attribute('id')}']").click()
        wait(lambda d: pane.is_displayed(), f"tab {pane.get_attribute('id')}")


def choose(select, text):
    """Picks an option as a user does: from the themed dropdown that stands
    for the select element, or from the select itself."""
    themed = driver.execute_script("return arguments[0].closest('.themable-select')", select)
    if themed is None or select.is_displayed():
        Select(select).select_by_visible_text(text)
        return
    themed.find_element(By.CSS_SELECTOR, ".dropdown-toggle").click()
    options = [a for a in themed.find_elements(By.CSS_SELECTOR, ".dropdown-menu a") if a.text.strip() == text]
    if not options:
        fail(f"no option '{text}' in {select.get_attribute('name')}")
    options[0].click()


def fill(fields):
    for field, value in fields.items():
        element = driver.find_element(By.ID, f"id_{field}")
        show(element)
        if element.get_attribute("type") == "checkbox":
            if element.is_selected() != value:
                driver.execute_script("arguments[0].click()", element)
        elif element.tag_name == "select":
            choose(element, value)
        else:
            element.clear()
            element.send_keys(value)


def submit(form_path, fields, success):
    """Opens a form as a page, fills it, submits it, expects the success message."""
    open_page(form_path)
    fill(fields)
    button = driver.find_element(By.CSS_SELECTOR, "form [type=submit]")
    if not button.is_displayed():  # a workflow shows it on its last tab
        driver.find_elements(By.CSS_SELECTOR, "form a[data-toggle=tab]")[-1].click()
        wait(lambda d: button.is_displayed(), "the submit button")
    button.click()
    expect_success(success)


def expect_success(success):
    def settled(d):
        return d.find_elements(By.CSS_SELECTOR, ".alert-success, .alert-danger, .alert-error, .has-error")
    wait(lambda d: settled(d) and d.execute_script("return document.readyState") == "complete",
         f"the answer '{success}'")
    check_page("after submitting")
    texts = " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".alert-success"))
    if success not in texts:
        fail(f"expected '{success}', got '{texts}'")


def row_id(table, name):
    """The id of the row named NAME in TABLE on the current page."""
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table} tr[data-display='{name}']")
    if not rows:
        fail(f"no row '{name}' in table {table}")
    return rows[0].get_attribute("data-object-id")


def row_showing(table, text, what):
    """The id of the first row of TABLE whose text has TEXT as a word."""
    for row in driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr[data-object-id]"):
        if f" {text} " in f" {row.text} ".replace("\n", " "):
            return row.get_attribute("data-object-id")
    fail(f"{what} is not listed")


def row_action(table, object_id, action, success):
    """Runs a row's action (from its menu) and confirms it."""
    row = driver.find_element(By.CSS_SELECTOR, f"#{table} tr[data-object-id='{object_id}']")
    button_id = f"{table}__row_{object_id}__action_{action}"
    toggles = row.find_elements(By.CSS_SELECTOR, ".dropdown-toggle")
    if not row.find_element(By.ID, button_id).is_displayed() and toggles:
        toggles[0].click()
    row.find_element(By.ID, button_id).click()
    confirm = wait(ec.element_to_be_clickable((By.CSS_SELECTOR, ".modal-footer .btn-danger, .modal-footer .btn-primary")),
                   "the confirmation dialog")
    confirm.click()
    expect_success(success)


options = webdriver.ChromeOptions()
for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000"):
    options.add_argument(argument)
options.binary_location = "/usr/bin/chromium"
options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    step = "login"
    driver.get(f"{base}/auth/login/?next=/project/networks/")
    driver.find_element(By.ID, "id_username").send_keys(user)
    driver.find_element(By.ID, "id_password").send_keys(password)
    driver.find_element(By.ID, "loginBtn").click()
    wait(ec.title_contains("Networks"), "the networks page after login")
    check_page("after login")

    step = "create network"
    submit("/project/networks/create",
           {"net_name": "hz-net", "subnet_name": "hz-sub", "cidr": "10.77.0.0/24",
            "dns_nameservers": "10.77.0.53"},
           'Created network "hz-net"')
    network = row_id("networks", "hz-net")

    step = "edit network"
    submit(f"/project/networks/{network}/update", {"name": "hz-net-2"}, "Network hz-net-2 was successfully updated")

    step = "network detail"
    open_page(f"/project/networks/{network}/detail")
    open_page(f"/project/networks/{network}/detail?tab=network_tabs__subnets_tab")
    subnet = row_id("subnets", "hz-sub")

    step = "edit subnet"
    submit(f"/project/networks/{network}/subnets/{subnet}/update",
           {"subnet_name": "hz-sub-2"}, 'Updated subnet "hz-sub-2"')

    step = "create port"
    submit(f"/project/networks/{network}/ports/create", {"name": "hz-port"}, 'Port hz-port was successfully created')
    open_page(f"/project/networks/{network}/detail?tab=network_tabs__ports_tab")
    port = row_id("ports", "hz-port")

    step = "edit port"
    submit(f"/project/networks/{network}/ports/{port}/update", {"name": "hz-port-2"},
           "Port hz-port-2 was successfully updated")

    step = "create router"
    submit("/project/routers/create/", {"name": "hz-router", "external_network": "public"},
           "Router hz-router was successfully created")
    router = row_id("routers", "hz-router")

    step = "edit router"
    submit(f"/project/routers/{router}/update", {"name": "hz-router-2"}, "Router hz-router-2 was successfully updated")

    step = "add router interface"
    submit(f"/project/routers/{router}/addinterface", {"subnet_id": "hz-net-2: 10.77.0.0/24 (hz-sub-2)"},
           "Interface added")

    step = "allocate floating IP"
    submit("/project/floating_ips/allocate/", {"pool": "public"}, "Allocated Floating IP")
    message = driver.find_element(By.CSS_SELECTOR, ".alert-success").text
    floating_ip = message.rstrip(".").rsplit(" ", 1)[-1]

    step = "create security group"
    submit("/project/security_groups/create/", {"name": "hz-sg", "description": "from Horizon"},
           'Successfully created security group: hz-sg')
    # Horizon goes on to the new group's rules.
    group = driver.current_url.rstrip("/").rsplit("/", 1)[-1]

    step = "edit security group"
    submit(f"/project/security_groups/{group}/update/", {"name": "hz-sg-2"},
           "Successfully updated security group: hz-sg-2")

    step = "add security group rule"
    submit(f"/project/security_groups/{group}/add_rule/", {"rule_menu": "SSH"}, "Successfully added rule")

    step = "network topology"
    open_page("/project/network_topology/")
    def drawn(d):
        names = {e.text for e in d.find_elements(By.CSS_SELECTOR, "#topology_canvas .network-name")}
        routers = d.find_elements(By.CSS_SELECTOR, "#topology_canvas .router_small, #topology_canvas .router_normal")
        return {"public", "hz-net-2"} <= names and routers
    wait(drawn, "both networks and the router in the topology")
    check_page("the topology")

    step = "delete security group rule"
    open_page(f"/project/security_groups/{group}/")
    row_action("rules", row_showing("rules", "22", "the SSH rule"), "delete", "Deleted Rule")

    step = "delete security group"
    open_page("/project/security_groups/")
    row_action("security_groups", group, "delete", "Deleted Security Group: hz-sg-2")

    step = "release floating IP"
    open_page("/project/floating_ips/")
    row_action("floating_ips", row_id("floating_ips", floating_ip), "release", "Released Floating IP")

    step = "remove router interface"
    open_page(f"/project/routers/{router}/?tab=router_details__interfaces")
    row_action("interfaces", row_showing("interfaces", "10.77.0.1", "the router's interface"), "delete",
               "Deleted Interface")

    step = "delete router"
    open_page("/project/routers/")
    row_action("routers", router, "delete", "Deleted Router: hz-router-2")

    step = "delete port"
    open_page(f"/project/networks/{network}/detail?tab=network_tabs__ports_tab")
    row_action("ports", port, "delete", "Deleted Port: hz-port-2")

    step = "delete network"
    open_page("/project/networks/")
    row_action("networks", network, "delete", "Deleted Network: hz-net-2")
    if driver.find_elements(By.CSS_SELECTOR, f"#networks tr[data-object-id='{network}']"):
        fail("the deleted network is still listed")

    print("horizon: all forms passed")
finally:
    driver.quit()
