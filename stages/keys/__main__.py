from bus.stage import main
from stages.keys.stage import Keys

main(Keys)
